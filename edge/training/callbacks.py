"""The end-of-epoch work of a training run: NaN guard, LR, validation mAP, checkpoints, ETA."""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from pathlib import Path
from typing import Any

import keras

from edge.errors import LIST_BYTES, read_text_bounded
from edge.training.checkpoint import (
    STATE_FILE,
    ResumeState,
    copy_file,
    ema_values,
    save_model,
    save_state,
    to_numpy,
    write_text,
)
from edge.training.schedule import WarmupCosine
from edge.training.validate import Validator

log = logging.getLogger(__name__)

RESULTS_FILE = "results.csv"
COLUMNS = ("epoch", "loss", "box_loss", "cls_loss", "lr", "map50", "map50_95", "seconds")


class EpochEnd(keras.callbacks.Callback):
    """Adds `lr`, `map50`, `map50_95` to the epoch logs (before the progress bar sees them),
    writes `last.keras`, `best.keras` (EMA weights), the resume state and a `results.csv` row,
    and stops at the first non-finite loss (`nan_at` then says where).
    """

    def __init__(
        self,
        *,
        out: Path,
        twin: keras.Model,
        validator: Validator | None,
        schedule: WarmupCosine,
        options_json: str,
        epochs: int,
        best: float = -math.inf,
        writes: bool = True,
        clock: Any = None,
        batch_size: int = 0,
    ) -> None:
        super().__init__()
        self.clock = clock  # edge.training.pydataset.FeedClock: the feed's rate beside the step's
        self.batch_size = batch_size
        self._steps = 0
        self._train_ns = 0
        self.out = out
        self.twin = twin
        self.validator = validator
        self.schedule = schedule
        self.options_json = options_json
        self.epochs = epochs
        self.best = best
        self.writes = writes  # False on all but process 0 of a multi-machine run
        self.nan_at: tuple[int, int, float] | None = None
        self.epoch = 0
        self._epoch_ns: list[int] = []
        self._start_ns = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch
        self._start_ns = time.perf_counter_ns()
        self._steps = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._steps += 1
        self._train_ns = time.perf_counter_ns() - self._start_ns  # up to the last step, no val
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss) and self.nan_at is None:
            self.nan_at = (self.epoch, batch, loss)
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.nan_at is not None:
            return
        logs = logs if logs is not None else {}
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        logs["lr"] = self.schedule.value(max(step - 1, 0))
        # The twin holds the EMA weights: it is what gets validated and saved.
        self.twin.set_weights(ema_values(self.model))
        metrics = self.validator(self.twin) if self.validator is not None else {}
        logs["map50"] = metrics.get("map50", math.nan)
        logs["map50_95"] = metrics.get("map50_95", math.nan)
        fitness = (
            logs["map50_95"]
            if math.isfinite(logs["map50_95"])
            else -float(logs.get("loss", math.inf))
        )
        improved = fitness > self.best
        if improved:
            self.best = fitness
        # Every process reads the state (reading a value spread over processes is collective);
        # only the writer saves it.
        state = ResumeState(
            epoch=epoch + 1,
            best=self.best,
            options_json=self.options_json,
            model_config=self.model.get_config(),
            weights=to_numpy(self.model.weights),
            optimizer=to_numpy(self.model.optimizer.variables),
        )
        if self.writes:
            save_model(self.twin, self.out / "last.keras")
            if improved:
                copy_file(self.out / "last.keras", self.out / "best.keras")
        self._epoch_ns.append(time.perf_counter_ns() - self._start_ns)
        if self.writes:
            # The state goes last: it is what `--resume` trusts. A kill before it leaves this
            # epoch's row behind, and the resumed run truncates rows back to the state's epoch.
            append_row(self.out / RESULTS_FILE, epoch, logs, self._epoch_ns[-1] / 1e9)
            save_state(self.out / STATE_FILE, state)
        self._log(epoch, logs, improved)
        self._log_rates(epoch)

    def _log_rates(self, epoch: int) -> None:
        """Steps/s of training (first epoch: compilation included) beside the feed's capacity."""
        if self.clock is None or not self._steps or not self._train_ns:
            return
        built, mean_s = self.clock.take()
        step_rate = self._steps / (self._train_ns / 1e9)
        feed_rate = self.clock.steps_per_s(mean_s)
        log.info(
            "epoch %d  step %.2f it/s (%.0f images/s)  feed %.2f it/s (%d workers, %.1f ms a "
            "batch)%s",
            epoch + 1,
            step_rate,
            step_rate * self.batch_size,
            feed_rate,
            self.clock.workers,
            mean_s * 1e3,
            "  the feed is the bottleneck: more --workers" if 0 < feed_rate < step_rate else "",
        )

    def _log(self, epoch: int, logs: dict[str, Any], improved: bool) -> None:
        left = (self.epochs - epoch - 1) * sum(self._epoch_ns) / len(self._epoch_ns) / 1e9
        log.info(
            "epoch %d/%d  loss %.4f (box %.4f, cls %.4f)  lr %.2e  mAP50 %.4f  mAP50-95 %.4f%s  eta %s",
            epoch + 1,
            self.epochs,
            float(logs.get("loss", math.nan)),
            float(logs.get("box_loss", math.nan)),
            float(logs.get("cls_loss", math.nan)),
            logs["lr"],
            logs["map50"],
            logs["map50_95"],
            "  *best*" if improved else "",
            _duration(left),
        )


def append_row(path: Path, epoch: int, logs: dict[str, Any], seconds: float) -> None:
    """One epoch's row of `results.csv` (the header first when the file is new).

    The file is rewritten whole and moved into place, so a kill never leaves half a row."""
    values = {**{k: logs.get(k, math.nan) for k in COLUMNS}, "epoch": epoch, "seconds": seconds}
    rows = _read_rows(path) or [list(COLUMNS)]
    rows.append([str(values["epoch"]), *(f"{float(values[k]):.6g}" for k in COLUMNS[1:])])
    _write_rows(path, rows)


def truncate_rows(path: Path, epoch: int) -> None:
    """Drop rows of epochs >= `epoch` (written after the state a resumed run goes back to)."""
    if not path.exists():
        return
    rows = _read_rows(path)
    _write_rows(path, rows[:1] + [r for r in rows[1:] if r and int(r[0]) < epoch])


def _read_rows(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return list(csv.reader(io.StringIO(read_text_bounded(path, LIST_BYTES, str(path)), newline="")))


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    write_text(path, text.getvalue())


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
