"""Checkpoints: atomic writes (temp file, fsync, rename), the resume state, the EMA weights.

`last.keras` / `best.keras` are plain detectors (EMA weights, no optimizer) that load anywhere.
`last.state.npz` holds what `--resume` needs: the raw weights, every optimizer variable (step
count, moments, EMA) and the epoch, written together so they always agree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge.errors import EdgeError
from edge.outputs.files import fsync_folder

STATE_FILE = "last.state.npz"
STATE_VERSION = 1


@dataclass(frozen=True)
class ResumeState:
    """Where a run stopped: `epoch` is the next epoch to train."""

    epoch: int
    best: float
    options_json: str
    model_config: dict[str, Any]
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    # What the model's config does not carry back (a KerasHub model rebuilds its layers from
    # its arguments): `learning_norms`, the paths of the batch norms that train.
    extra: dict[str, Any] = field(default_factory=dict)


# `.{name}.{pid}.tmp{suffix}`: hidden, and never one of the names a run reads back.
_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.tmp(?P<suffix>\.\w+)?")


def atomic_write(path: Path, write: Any, suffix: str) -> None:
    """Call `write(tmp_path)` for a temp file beside `path`, flush it to disk, then move it into
    place: a crash or kill leaves either the old file or the new one, never a part of one."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{suffix}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # rb+: Windows cannot fsync a read-only handle
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temp files that killed processes left in `folder` (not a live process's)."""
    removed = []
    for path in folder.glob(".*.tmp*"):
        match = _TEMP.fullmatch(path.name)
        if match and not _alive(int(match["pid"])) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate it on Windows
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # another user's process
    except (ProcessLookupError, OverflowError):
        return False
    return True


def save_model(model: keras.Model, path: Path) -> None:
    atomic_write(path, lambda tmp: model.save(tmp), ".keras")


def copy_file(source: Path, path: Path) -> None:
    atomic_write(path, lambda tmp: shutil.copyfile(source, tmp), path.suffix)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""), path.suffix)


def save_state(path: Path, state: ResumeState) -> None:
    meta = {
        "version": STATE_VERSION,
        "epoch": state.epoch,
        "best": state.best,
        "options": state.options_json,
        "model_config": state.model_config,
        "extra": state.extra,
    }
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    arrays.update({f"w{i:05d}": w for i, w in enumerate(state.weights)})
    arrays.update({f"o{i:05d}": v for i, v in enumerate(state.optimizer)})

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write, ".npz")


def load_state(path: Path) -> ResumeState:
    """Read a resume state; EdgeError when it is missing or unreadable."""
    if not path.is_file():
        raise EdgeError(
            f"nothing to resume: {path} not found (was the run started in this folder?)"
        )
    try:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            weights = [data[k] for k in sorted(k for k in data.files if k.startswith("w"))]
            optimizer = [data[k] for k in sorted(k for k in data.files if k.startswith("o"))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise EdgeError(f"cannot read resume state {path}: {exc}") from None
    if meta.get("version") != STATE_VERSION:
        raise EdgeError(
            f"{path}: resume state version {meta.get('version')}, expected {STATE_VERSION}"
        )
    return ResumeState(
        epoch=int(meta["epoch"]),
        best=float(meta["best"]),
        options_json=meta["options"],
        model_config=meta["model_config"],
        weights=weights,
        optimizer=optimizer,
        extra=dict(meta.get("extra") or {}),
    )


def to_numpy(variables: list[Any]) -> list[np.ndarray]:
    """Host copies of variables (the whole value, also when it spans several processes)."""
    return [_host(v) for v in variables]


def _host(variable: Any) -> np.ndarray:
    value = variable
    if keras.backend.backend() == "jax" and isinstance(variable, keras.Variable):
        value = variable.value
    if not getattr(value, "is_fully_addressable", True):  # a JAX array over several processes
        if value.sharding.is_fully_replicated:
            value = value.addressable_data(0)  # every process holds the whole value
        else:
            from jax.experimental import multihost_utils

            value = multihost_utils.process_allgather(value, tiled=True)
    return np.array(keras.ops.convert_to_numpy(value))


def assign(variables: list[Any], values: list[np.ndarray], what: str) -> None:
    if len(variables) != len(values):
        raise EdgeError(
            f"resume state has {len(values)} {what} values, the run has {len(variables)}"
        )
    for var, value in zip(variables, values, strict=True):
        if tuple(var.shape) != value.shape:
            raise EdgeError(
                f"resume state {what} shape {value.shape} != {tuple(var.shape)} ({var.path})"
            )
        var.assign(value)


def ema_values(model: keras.Model) -> list[np.ndarray]:
    """The model's weights (in `model.weights` order) with each trainable one replaced by its
    exponential moving average where the optimizer keeps one. Reads only; swaps nothing."""
    optimizer = model.optimizer
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer
    averages = (
        getattr(inner, "_model_variables_moving_average", None) if inner is not None else None
    )
    ema: dict[int, Any] = {}
    if getattr(inner, "use_ema", False) and averages:
        ema = {
            id(v): a
            for v, a in zip(inner._trainable_variables, averages, strict=True)
            if a is not None
        }
    return to_numpy([ema.get(id(v), v) for v in model.weights])
