"""What an export records about itself: the model contract plus provenance in `extra` entries.

Training provenance comes from the files `edge train` writes beside `best.keras`/`last.keras`:
`options.json` (the dataset it trained on) and `results.csv` (mAP per epoch: the best epoch's for
`best.keras`, the last epoch's for any other file).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge.errors import LIST_BYTES, EdgeError, read_text_bounded
from edge.runtime.contract import ModelContract

log = logging.getLogger(__name__)

OPTIONS_FILE = "options.json"  # edge.training: TrainOptions.to_json()
RESULTS_FILE = "results.csv"  # edge.training: one row per epoch, map50 and map50_95 columns


def training_info(model_path: Path) -> dict[str, str]:
    """`edge.dataset`, `edge.epoch`, `edge.map50_95`, `edge.map50` for a model saved by training;
    empty when its run folder has no such files (unreadable ones are logged and skipped)."""
    info: dict[str, str] = {}
    options = _read(model_path.parent / OPTIONS_FILE, json.loads)
    if isinstance(options, dict) and isinstance(options.get("data"), str) and options["data"]:
        info["edge.dataset"] = options["data"]
    rows = _read(model_path.parent / RESULTS_FILE, lambda t: list(csv.DictReader(t.splitlines())))
    row = _epoch_row(rows or [], best=model_path.stem == "best")
    if row is not None:
        info["edge.epoch"] = str(int(float(row["epoch"])) + 1)
        for key in ("map50_95", "map50"):
            info[f"edge.{key}"] = f"{float(row[key]):.4f}"
    return info


def _read(path: Path, parse: Any) -> Any:
    if not path.is_file():
        return None
    try:
        return parse(read_text_bounded(path, LIST_BYTES, str(path)))
    except (OSError, ValueError, csv.Error, EdgeError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None


def _epoch_row(rows: list[dict[str, str]], best: bool) -> dict[str, str] | None:
    """The row with the highest finite mAP50-95 (best) or the last row with a finite one."""
    scored = []
    for row in rows:
        try:
            values = [float(row[k]) for k in ("epoch", "map50_95", "map50")]
        except (KeyError, TypeError, ValueError):
            continue
        if all(math.isfinite(v) for v in values):
            scored.append((values[1], row))
    if not scored:
        return None
    return max(scored, key=lambda item: item[0])[1] if best else scored[-1][1]


def export_contract(
    contract: ModelContract,
    config: Mapping[str, Any],
    provenance: Mapping[str, str],
    precision: str,
    batch: str,
) -> ModelContract:
    """The contract an exported file carries: `contract` plus family, size, precision, versions."""
    from edge import __version__

    extra = {
        **contract.extra,
        "edge.family": str(config.get("class_name", "Detector")),
        "edge.width": str(config.get("width", "")),
        "edge.depth": str(config.get("depth", "")),
        "edge.version": __version__,
        "edge.precision": precision,
        "edge.batch": batch,
        **provenance,
    }
    return replace(contract, extra={k: v for k, v in extra.items() if v != ""})


def with_metadata(model: Any, contract: ModelContract) -> Any:
    """A copy of `model` (an onnx.ModelProto) whose `metadata_props` are the contract's entries
    alone (converters' own entries, such as the quantizer's, are dropped)."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.metadata_props[:]
    for key, value in sorted(contract.to_metadata().items()):
        out.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    return out
