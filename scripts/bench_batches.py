"""Is the input pipeline the bottleneck? Images/s of the pipeline alone, through Keras `fit` with a
no-op model, and (with --train MODEL) of real training steps fed by it and fed from memory.

    python scripts/bench_batches.py --data ../shared/datasets/raccoon --imgsz 320 --batch 16
    python scripts/bench_batches.py --toy 64 --train mobilenet_v3_small --steps 10
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="dataset folder (YOLO, COCO or VOC)")
    parser.add_argument("--toy", type=int, default=0, help="use N toy images instead of --data")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--train", metavar="MODEL", help="also time real training steps of MODEL")
    parser.add_argument("--precision", choices=("fp32", "mixed"), default="fp32")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from edge.data.batches import NO_AUGMENT, Augment, TrainBatches, benchmark

    samples = _samples(args)
    augment = NO_AUGMENT if args.no_augment else Augment()
    batches = TrainBatches(
        samples, args.imgsz, args.batch, augment=augment, max_boxes=64, cache=True
    )
    results: dict[str, object] = {"images": len(samples), "imgsz": args.imgsz, "batch": args.batch}
    benchmark(batches, steps=min(len(batches), 4), workers=args.workers)  # fill the decode cache
    results["pipeline"] = benchmark(batches, steps=args.steps, workers=args.workers)
    _report("pipeline alone (threads)", results["pipeline"])

    import keras

    from edge.training.pydataset import benchmark_feed

    results["backend"] = keras.backend.backend()
    results["keras_feed_noop_model"] = benchmark_feed(
        batches, steps=args.steps, workers=args.workers
    )
    _report("Keras fit, no-op model", results["keras_feed_noop_model"])
    if args.train:
        results["train_step_fed"], results["train_step_memory"] = _train(args, batches)
        _report(
            f"training {args.train} ({args.precision}), fed by the pipeline",
            results["train_step_fed"],
        )
        _report(
            f"training {args.train} ({args.precision}), one batch from memory",
            results["train_step_memory"],
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _samples(args: argparse.Namespace) -> tuple:
    if args.toy:
        from edge.training.toy import write_toy_dataset

        folder = Path(tempfile.mkdtemp(prefix="edge-bench-"))
        return write_toy_dataset(folder, args.toy, 0, (640, 480)).train
    if not args.data:
        raise SystemExit("give --data PATH or --toy N")
    from edge.data import load_dataset

    return load_dataset(args.data).train


def _train(args: argparse.Namespace, batches: object) -> tuple[dict[str, float], dict[str, float]]:
    """Images/s of real steps: fed by the pipeline, then repeating one in-memory batch."""
    import keras

    from edge.model import build_detector
    from edge.training.optimizer import build_optimizer
    from edge.training.pydataset import Feed

    class StepTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[int] = []

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.times.append(time.perf_counter_ns())

        def rate(self, warmup: int) -> dict[str, float]:
            times = self.times[warmup:]  # after compilation and the first batches
            steps = len(times) - 1
            seconds = (times[-1] - times[0]) / 1e9
            return {
                "steps_per_s": steps / seconds,
                "images_per_s": steps * args.batch / seconds,
                "seconds": seconds,
            }

    class Repeat(keras.utils.PyDataset):
        def __init__(self, item: tuple, n: int) -> None:
            super().__init__()
            self.item, self.n = item, n

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, index: int) -> tuple:
            return self.item

    if args.precision == "mixed":
        keras.config.set_dtype_policy("mixed_float16")
    model = build_detector(["a", "b"], args.imgsz, args.train, weights=None)
    model.compile(optimizer=build_optimizer(1e-3, 1, 1000), jit_compile="auto")
    warmup = 3
    epochs = -(-(args.steps + warmup) // len(batches))  # small datasets: several epochs
    fed = StepTimer()
    model.fit(Feed(batches, workers=args.workers), epochs=epochs, verbose=0, callbacks=[fed])
    memory = StepTimer()
    model.fit(
        Repeat(batches.batch(0, 0), args.steps + warmup), epochs=1, verbose=0, callbacks=[memory]
    )
    return fed.rate(warmup), memory.rate(warmup)


def _report(what: str, stats: dict[str, float]) -> None:
    logging.info(
        "%-60s %8.1f images/s (%.2f steps/s)", what, stats["images_per_s"], stats["steps_per_s"]
    )


if __name__ == "__main__":
    sys.exit(main())
