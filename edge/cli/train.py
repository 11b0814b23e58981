"""`edge train`: train a detector on a YOLO, COCO or VOC dataset; writes best.keras and last.keras."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli.argtypes import MAX_SIDE, integer, number, seed
from edge.errors import CONFIG_BYTES, EdgeError, check_regular, read_text_bounded

if TYPE_CHECKING:
    from edge.data.dataset import Dataset

log = logging.getLogger("edge")

BACKENDS = {"tf": "tensorflow", "tensorflow": "tensorflow", "jax": "jax"}


class _Imgsz:
    """A square training input size: a multiple of 32 in [32, MAX_SIDE]."""

    range_text = f"a multiple of 32 in [32, {MAX_SIDE}]"
    __name__ = "imgsz"

    def __call__(self, text: str) -> int:
        value = integer(32, MAX_SIDE)(text)
        if value % 32:
            raise argparse.ArgumentTypeError(f"must be a multiple of 32, got {value}")
        return value


_imgsz = _Imgsz()


def add_parser(sub: argparse._SubParsersAction) -> None:
    from edge.training.train_options import DEFAULT_MODEL, MODELS

    p = sub.add_parser(
        "train",
        help="train a detector (Keras 3) on a dataset",
        description=(
            "Train an anchor-free detector on a YOLO, COCO or VOC dataset. Every epoch logs the "
            "losses, learning rate and val mAP50 / mAP50-95 to OUT/results.csv and writes "
            "OUT/last.keras and OUT/best.keras; --resume continues an interrupted run. The "
            "Keras backend is KERAS_BACKEND (or --backend); several GPUs are used together."
        ),
    )
    p.add_argument("--data", help="dataset folder or file (needed unless --resume)")
    p.add_argument("--out", required=True, type=Path, help="run folder for models and logs")
    p.add_argument(
        "--model", choices=MODELS, default=None, help=f"backbone (default {DEFAULT_MODEL})"
    )
    p.add_argument("--imgsz", type=_imgsz, default=320, help="square input size (default 320)")
    p.add_argument("--epochs", type=integer(1, 100_000), default=100, help="default 100")
    p.add_argument("--batch", type=integer(1, 65_536), default=16, help="global batch size")
    p.add_argument(
        "--weights",
        default="imagenet",
        metavar="imagenet|none|PATH",
        help="backbone initialisation (default imagenet, downloaded once into ~/.keras)",
    )
    p.add_argument(
        "--init",
        metavar="MODEL.keras|PRESET",
        help="start from a detector trained before, or fine-tune a KerasHub D-FINE preset (a "
        "local preset folder or a name such as dfine_nano_coco, downloaded once; needs "
        "edge[kerashub]): a new class head for the dataset's classes",
    )
    p.add_argument(
        "--freeze-backbone-epochs",
        type=integer(0, 100_000),
        default=0,
        metavar="N",
        help="train only neck and head for the first N epochs",
    )
    p.add_argument(
        "--precision", choices=("fp32", "mixed"), default="fp32", help="mixed: float16 on GPU"
    )
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--backend", choices=sorted(BACKENDS), help="Keras backend (sets KERAS_BACKEND)")
    p.add_argument("--workers", type=integer(1, 256), default=4, help="decode threads")
    p.add_argument("--seed", type=seed, default=0, help="default 0")
    p.add_argument("--devices", type=integer(1, 1024), help="use N devices (default all)")
    p.add_argument(
        "--model-parallel",
        type=integer(1, 1024),
        default=1,
        metavar="N",
        help="JAX: shard the weights over N devices (a (devices/N, N) batch x model mesh), "
        "for a backbone or input size too large for one device",
    )
    p.add_argument(
        "--lr",
        type=number(0.0, 10.0, open_low=True),
        default=2e-3,
        help="peak learning rate (AdamW)",
    )
    p.add_argument(
        "--width",
        type=integer(8, 4096),
        default=None,
        help="neck/head channels (default: the backbone's; smaller is faster)",
    )
    p.add_argument("--no-augment", action="store_true", help="no augmentation (debugging)")
    p.add_argument(
        "--jit", choices=("auto", "on", "off"), default="auto", help="XLA (auto: on for GPUs)"
    )
    multi = p.add_argument_group("several machines (JAX backend)")
    multi.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    multi.add_argument("--num-processes", type=integer(1, 4096), default=1)
    multi.add_argument("--process-id", type=integer(0, 4095), default=0)
    multi.add_argument(
        "--every-process-saves",
        action="store_true",
        help="every process writes checkpoints to its own --out (default: process 0 only)",
    )
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    weights = _weights(args)  # checked before TensorFlow loads: a bad flag answers at once
    _check_out(args)
    _select_backend(args.backend)
    from edge.data.batches import Augment
    from edge.training import TrainOptions, train
    from edge.training.train_options import DEFAULT_MODEL

    if not args.resume and not args.data:
        raise EdgeError("--data is required (unless --resume)")
    options = TrainOptions(
        data=str(Path(args.data).resolve()) if args.data else None,
        model=args.model or DEFAULT_MODEL,
        imgsz=args.imgsz,
        epochs=args.epochs,
        batch=args.batch,
        weights=weights,
        init=args.init,
        freeze_backbone_epochs=args.freeze_backbone_epochs,
        precision=args.precision,
        workers=args.workers,
        seed=args.seed,
        devices=args.devices,
        model_parallel=args.model_parallel,
        lr=args.lr,
        width=args.width,
        augment=Augment.off() if args.no_augment else Augment(),
        jit={"auto": None, "on": True, "off": False}[args.jit],
        coordinator=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        # Keras' progress bar redraws one line with ANSI codes: only on a terminal. Elsewhere the
        # one line per epoch that training logs is the progress.
        verbose=1 if sys.stdout.isatty() else 0,
    )
    dataset = _dataset(args)
    try:
        result = train(
            dataset,
            args.out,
            options,
            resume=args.resume,
            every_process_saves=args.every_process_saves,
        )
    except KeyboardInterrupt:
        _interrupted(args.out)
        raise  # edge.cli prints "edge train: interrupted" and exits with 130
    log.info("done: %d epochs; best %s, last %s", result.epochs, result.best, result.last)
    return 0


def _weights(args: argparse.Namespace) -> str | None:
    """--weights: imagenet, none, or a file that exists and that the chosen backbone can take."""
    from edge.training.train_options import DEFAULT_MODEL

    text = args.weights.strip()
    if text.lower() in ("none", ""):
        return None
    if text.lower() == "imagenet":
        return "imagenet"
    if not Path(text).exists():
        raise EdgeError(f"--weights {text}: no such file (use imagenet, none or a weights file)")
    check_regular(text, f"--weights {text}", EdgeError)
    if (args.model or DEFAULT_MODEL) == "tiny":
        raise EdgeError(
            f"--weights {text}: the tiny model has no pretrained backbone to load it into; "
            "choose another --model or drop --weights"
        )
    return text


def _check_out(args: argparse.Namespace) -> None:
    """--out is a run folder: not a file, its parent writable, not the dataset itself."""
    from edge.outputs.files import check_folder

    check_folder("--out", args.out)
    if args.data and Path(args.data).exists() and Path(args.data).resolve() == args.out.resolve():
        raise EdgeError(f"--out {args.out}: is the dataset --data; give the run its own folder")


def _interrupted(out: Path) -> None:
    """Say what an interrupted run kept: the epoch in progress is lost, the checkpoint is not."""
    from edge.training.checkpoint import STATE_FILE

    if (out / STATE_FILE).is_file():
        log.info("stopped; %s holds the last finished epoch: continue with", out)
        log.info("  edge train --out %s --resume", out)
    else:
        log.info("stopped before the first epoch finished; nothing to resume in %s", out)


def _dataset(args: argparse.Namespace) -> Dataset:
    from edge.data import load_dataset
    from edge.training import TrainOptions

    data = args.data
    if data is None:  # --resume alone: the dataset the run was started on
        saved = args.out / "options.json"
        try:
            text = read_text_bounded(saved, CONFIG_BYTES, f"--resume: {saved}", EdgeError)
            data = TrainOptions.from_json(text).data
        except FileNotFoundError:
            data = None
        except (ValueError, TypeError, KeyError) as exc:
            raise EdgeError(
                f"--resume: {saved} is damaged ({' '.join(str(exc).split())[:120]}); "
                f"pass --data to restart in a new --out"
            ) from None
        if not data:
            raise EdgeError(f"{args.out}: no recorded dataset; pass --data with --resume")
    return load_dataset(data)


def _select_backend(choice: str | None) -> None:
    """Set KERAS_BACKEND before Keras is imported; refuse to switch once it is."""
    if choice is None:
        return
    backend = BACKENDS[choice]
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != backend:
        raise EdgeError(
            f"Keras is already running on {keras.backend.backend()}; cannot switch to {backend}"
        )
    os.environ["KERAS_BACKEND"] = backend
