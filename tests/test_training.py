"""edge.training: a tiny detector overfits, resumes exactly, stops on NaN, fine-tunes; the CLI."""

from __future__ import annotations

import csv
import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edge.data.batches import NO_AUGMENT, Augment  # noqa: E402
from edge.data.dataset import Dataset  # noqa: E402
from edge.errors import EdgeError  # noqa: E402
from edge.model import KerasDetector, build_detector, contract_for, load_detector  # noqa: E402
from edge.model.losses import DetectionLoss  # noqa: E402
from edge.training import TrainOptions, train  # noqa: E402
from edge.training.checkpoint import STATE_FILE, load_state  # noqa: E402
from edge.training.schedule import WarmupCosine  # noqa: E402
from edge.training.toy import write_toy_dataset, write_toy_yolo  # noqa: E402

TINY = TrainOptions(
    model="tiny",
    imgsz=64,
    epochs=8,
    batch=2,
    weights=None,
    augment=NO_AUGMENT,
    workers=1,
    warmup_epochs=1,
    lr=1e-2,
    verbose=0,
)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), n_train=4, n_val=2, size=(96, 96))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class _StopAfter(keras.callbacks.Callback):
    """Interrupts training (as Ctrl-C would) at the end of one epoch."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.stop_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.stop_epoch:
            raise KeyboardInterrupt


def test_a_tiny_detector_learns_to_detect_and_resumes_exactly(toy: Dataset, tmp_path: Path) -> None:
    # Validating on the training images, the loss falls and mAP rises (batch norms with a fast
    # momentum let inference-mode statistics keep up within a few dozen steps). The run is
    # interrupted after epoch 6 and resumed with its saved options.
    keras.utils.set_random_seed(0)  # the start's weights, whatever tests ran before this one
    build_detector(toy.names, 64, "tiny", bn_momentum=0.6).save(tmp_path / "start.keras")
    seen = type(toy)(toy.root, toy.format, toy.names, toy.train, toy.train)
    options = TINY.but(epochs=16, init=str(tmp_path / "start.keras"), warmup_epochs=2)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(seen, out, options, callbacks=[_StopAfter(5)])
    assert load_state(out / STATE_FILE).epoch == 6
    result = train(seen, out, TINY.but(epochs=99, workers=2), resume=True)  # saved options win
    assert result.epochs == options.epochs and len(result.history["loss"]) == 10

    rows = _rows(out / "results.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(options.epochs))
    assert set(rows[0]) >= {"loss", "box_loss", "cls_loss", "lr", "map50", "map50_95"}
    losses = [float(r["loss"]) for r in rows]
    assert sum(losses[-3:]) / 3 < 0.6 * losses[0]
    assert max(float(r["map50"]) for r in rows[-3:]) > 0.3
    assert all(0.0 <= float(r["map50"]) <= 1.0 for r in rows)
    steps = 2  # 4 images, batch 2
    state = load_state(out / STATE_FILE)
    assert state.epoch == 16 and int(state.optimizer[0]) == 16 * steps  # iterations come first
    schedule = WarmupCosine(options.lr, 16 * steps, 2 * steps)
    for epoch in (5, 6, 15):  # the learning rate goes on as if never interrupted
        assert float(rows[epoch]["lr"]) == pytest.approx(
            schedule.value((epoch + 1) * steps - 1), rel=1e-4
        )

    assert contract_for(load_detector(result.best)).names == toy.names
    assert (out / "last.keras").is_file() and not list(out.glob(".*tmp*"))
    with pytest.raises(EdgeError, match="already finished"):
        train(toy, out, TINY, resume=True)
    with pytest.raises(EdgeError, match="nothing to resume"):
        train(toy, tmp_path / "empty", TINY, resume=True)


def test_a_resumed_run_ends_with_the_weights_of_the_run_never_interrupted(
    toy: Dataset, tmp_path: Path
) -> None:
    # Epoch orders come from the feed's (seed, epoch) alone: fit's own shuffle drew from Python's
    # global `random`, which the resumed run re-seeds, so its epochs saw another order than the
    # uninterrupted run's and the weights parted (augmentation on, to cover the feed's draws).
    options = TINY.but(epochs=4, batch=1, augment=Augment())
    whole = train(toy, tmp_path / "whole", options)
    with pytest.raises(KeyboardInterrupt):
        train(toy, tmp_path / "cut", options, callbacks=[_StopAfter(1)])
    train(toy, tmp_path / "cut", options, resume=True)
    a, b = load_state(whole.out / STATE_FILE), load_state(tmp_path / "cut" / STATE_FILE)
    assert a.epoch == b.epoch == 4 and len(a.weights) == len(b.weights) > 0
    for x, y in zip([*a.weights, *a.optimizer], [*b.weights, *b.optimizer], strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-6)


def test_a_nan_loss_stops_training_with_an_edge_error(
    toy: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def poisoned(
        self: DetectionLoss, targets: object, boxes: object, logits: object, points: object
    ) -> dict:
        return {"box": keras.ops.sum(boxes) * float("nan"), "cls": keras.ops.sum(logits) * 0.0}

    monkeypatch.setattr(DetectionLoss, "parts", poisoned)
    with pytest.raises(EdgeError, match="loss became nan at epoch 1, step 1"):
        train(toy, tmp_path, TINY.but(epochs=3))
    assert not (tmp_path / "last.keras").exists()


def test_feed_clock_rates() -> None:
    from edge.training.pydataset import FeedClock

    clock = FeedClock(workers=4)
    assert clock.take() == (0, 0.0) and clock.steps_per_s(0.0) == 0.0
    for seconds in (0.1, 0.3):
        clock.add(seconds)
    built, mean = clock.take()
    assert built == 2 and mean == pytest.approx(0.2)
    assert clock.steps_per_s(mean) == pytest.approx(20.0)  # 4 workers, 0.2 s a batch
    assert clock.take() == (0, 0.0)  # reset each epoch


def test_fine_tuning_from_a_detector_with_other_classes(
    toy: Dataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build_detector(toy.names, 64, "tiny").save(tmp_path / "first.keras")
    source = load_detector(tmp_path / "first.keras")
    three = type(toy)(toy.root, toy.format, ("red", "green", "blue"), toy.train, toy.val)
    seen: list[list[np.ndarray]] = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            seen.append(self.model.backbone.get_weights())

    options = TINY.but(
        epochs=2, init=str(tmp_path / "first.keras"), freeze_backbone_epochs=1, imgsz=96
    )
    with caplog.at_level(logging.INFO, logger="edge.training"):
        train(three, tmp_path / "b", options, callbacks=[Watch()])
    rates = [r.getMessage() for r in caplog.records if " it/s (" in r.getMessage()]
    assert len(rates) == 2 and all("feed" in m and "workers" in m for m in rates)  # each epoch
    for a, b in zip(seen[0], source.backbone.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # frozen for the first epoch
    assert any(not np.array_equal(a, b) for a, b in zip(seen[1], seen[0], strict=True))
    tuned = load_detector(tmp_path / "b" / "last.keras")
    assert isinstance(tuned, KerasDetector) and tuned.names == ("red", "green", "blue")
    assert tuned.imgsz == (96, 96)


def test_warmup_cosine_schedule_by_hand() -> None:
    schedule = WarmupCosine(1.0, total_steps=10, warmup_steps=2, floor=0.01)
    # Warm-up: (step + 1) / 2; then cosine from 1 to 0.01 over the 8 remaining steps.
    expected = {0: 0.5, 1: 1.0, 2: 1.0, 6: 0.01 + 0.99 * 0.5, 10: 0.01}
    for step, value in expected.items():
        assert schedule.value(step) == pytest.approx(value)
        assert float(keras.ops.convert_to_numpy(schedule(step))) == pytest.approx(value, rel=1e-5)
    with pytest.raises(ValueError):
        WarmupCosine(1.0, total_steps=2, warmup_steps=3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": "resnet"}, "model must be one of"),
        ({"imgsz": 100}, "multiple of 32"),
        ({"epochs": 0}, "epochs"),
        ({"precision": "fp8"}, "precision"),
        ({"devices": 0}, "devices"),
        ({"num_processes": 2, "process_id": 2}, "process_id"),
        ({"num_processes": 3, "batch": 16}, "divide"),
        ({"num_processes": 2, "batch": 16}, "coordinator"),
    ],
)
def test_bad_options(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainOptions(**changes)


def test_options_round_trip_through_json() -> None:
    options = TrainOptions(
        model="tiny", augment=Augment(mosaic=0.25, hsv=(0.1, 0.2, 0.3)), devices=2
    )
    assert TrainOptions.from_json(options.to_json()) == options


def test_cli_imports_no_keras_and_rejects_resume_without_a_run(tmp_path: Path) -> None:
    code = (
        "import sys, edge.cli\n"
        "edge.cli.build_parser()\n"
        "assert not {'keras', 'tensorflow', 'jax'} & set(sys.modules), 'heavy import'\n"
        "sys.exit(edge.cli.main(['train', '--out', sys.argv[1], '--resume']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "edge train: error:" in done.stderr and "no recorded dataset" in done.stderr


def test_cli_trains_on_a_yolo_dataset(tmp_path: Path) -> None:
    from edge.cli import main

    root = write_toy_yolo(tmp_path / "yolo", n_train=3, n_val=1, size=(80, 64))
    out = tmp_path / "run"
    args = ["train", "--data", str(root), "--out", str(out), "--model", "tiny", "--imgsz", "64"]
    args += ["--epochs", "1", "--batch", "2", "--no-augment", "--workers", "1", "--weights", "none"]
    assert main(args) == 0
    assert (out / "best.keras").is_file() and math.isfinite(
        float(_rows(out / "results.csv")[0]["loss"])
    )
    assert TrainOptions.from_json((out / "options.json").read_text()).data == str(root.resolve())
