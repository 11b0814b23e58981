"""Reporting evaluation results: a plain-text table and an atomically written JSON file."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.evaluation.metrics import EvalResult


def format_table(result: EvalResult) -> str:
    """A plain-text table: the two means, then AP per class (`-` where a class has no truth)."""

    def cell(v: float) -> str:
        return f"{v:9.4f}" if math.isfinite(v) else f"{'-':>9}"

    width = max([5, *(len(n) for n in result.names)])
    lines = [
        f"{'class':<{width}} {'truths':>7} {'AP50-95':>9} {'AP50':>9}",
        f"{'all':<{width}} {int(result.num_truths.sum()):>7} "
        f"{cell(result.map50_95)} {cell(result.map50)}",
    ]
    for i, name in enumerate(result.names):
        lines.append(
            f"{name:<{width}} {int(result.num_truths[i]):>7} "
            f"{cell(result.ap50_95[i])} {cell(result.ap50[i])}"
        )
    lines.append(f"{result.num_images} images, {result.num_predictions} predictions")
    return "\n".join(lines)


def write_json(
    result: EvalResult, path: str | Path, writer: Callable[..., Path] | None = None, **extra: Any
) -> Path:
    """Write `result.to_dict()` (plus `extra` keys) to `path` by the output policy (edge.outputs.files);
    `writer` (an OutputGroup's `write_atomic`) stages it to appear with other files instead."""
    from edge.outputs import files

    path = Path(path)
    text = json.dumps({**result.to_dict(), **extra}, indent=2, allow_nan=False) + "\n"
    if writer is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = files.write_atomic
    return writer(path, "--json", lambda t: t.write_text(text, encoding="utf-8"), files.check_json)
