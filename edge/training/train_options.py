"""Training options: one frozen dataclass, validated on construction, stored with each run.

Importing this module is cheap (no TensorFlow or Keras), so the CLI can build options.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from edge.data.batches import Augment
from edge.model.backbones import DEFAULT_BACKBONE, NAMES

MODELS = NAMES  # --model takes a backbone name
DEFAULT_MODEL = DEFAULT_BACKBONE
PRECISIONS = ("fp32", "mixed")


@dataclass(frozen=True)
class TrainOptions:
    """How to train. `weights` is "imagenet", None or a backbone weights file; `init` a
    detector `.keras` to start from (its architecture wins over `model`). `devices` None uses
    every visible accelerator. `jit` None lets Keras decide (XLA on GPU). `coordinator`,
    `num_processes` and `process_id` join a multi-machine JAX run. `data` records where the
    dataset came from (for `edge train --resume`); training itself takes the Dataset.
    """

    data: str | None = None
    model: str = DEFAULT_MODEL
    imgsz: int = 320
    epochs: int = 100
    batch: int = 16
    weights: str | None = "imagenet"
    init: str | None = None
    freeze_backbone_epochs: int = 0
    precision: str = "fp32"
    workers: int = 4
    seed: int = 0
    devices: int | None = None
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 3.0
    ema: bool = True
    augment: Augment = field(default_factory=Augment)
    close_mosaic: int = 10
    max_boxes: int = 100
    jit: bool | None = None
    cache: bool | None = None
    width: int | None = None
    depth: int = 1
    verbose: int = 1
    coordinator: str | None = None
    num_processes: int = 1
    process_id: int = 0
    model_parallel: int = 1

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.imgsz < 32 or self.imgsz % 32:
            raise ValueError(f"imgsz must be a positive multiple of 32, got {self.imgsz}")
        for name in ("epochs", "batch", "max_boxes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("freeze_backbone_epochs", "close_mosaic", "workers", "depth"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.devices is not None and self.devices < 1:
            raise ValueError(f"devices must be >= 1, got {self.devices}")
        if self.model_parallel < 1:
            raise ValueError(f"model_parallel must be >= 1, got {self.model_parallel}")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("lr must be > 0, weight_decay and warmup_epochs >= 0")
        if self.num_processes < 1 or not 0 <= self.process_id < self.num_processes:
            raise ValueError(
                f"process_id must be in [0, num_processes), got {self.process_id} of {self.num_processes}"
            )
        if self.batch % self.num_processes:
            raise ValueError(
                f"batch {self.batch} must divide evenly over {self.num_processes} processes"
            )
        if self.num_processes > 1 and not self.coordinator:
            raise ValueError("num_processes > 1 needs a coordinator (HOST:PORT of process 0)")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainOptions:
        raw: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        raw = {k: v for k, v in raw.items() if k in known}
        if isinstance(raw.get("augment"), dict):
            aug = raw["augment"]
            aug["hsv"] = tuple(aug.get("hsv", (0.0, 0.0, 0.0)))
            raw["augment"] = Augment(**aug)
        return cls(**raw)

    def but(self, **changes: Any) -> TrainOptions:
        """A copy with some options changed."""
        return replace(self, **changes)
