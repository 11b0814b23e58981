"""Argument types shared by the sub-commands: each rejects a bad value with one clear line."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _number(text: str, cast: type, what: str) -> float:
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def whole(least: int) -> Callable[[str], int]:
    """A whole number >= least."""

    def parse(text: str) -> int:
        v = int(_number(text, int, "a whole number"))
        if v < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {v}")
        return v

    return parse


def positive_int(text: str) -> int:
    return whole(1)(text)


def positive_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def non_negative_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def fraction(text: str) -> float:
    """A number in [0, 1] (score thresholds)."""
    v = _number(text, float, "a number in [0, 1]")
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {v}")
    return v


def overlap(text: str) -> float:
    """A number in (0, 1] (IoU thresholds)."""
    v = fraction(text)
    if v == 0.0:
        raise argparse.ArgumentTypeError("must be in (0, 1], got 0")
    return v


def imgsz(text: str) -> tuple[int, int]:
    """N or HxW (also H,W) -> (height, width)."""
    parts = [p for p in text.lower().replace("x", ",").split(",") if p.strip()]
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
    vals = vals * 2 if len(vals) == 1 else vals
    if len(vals) != 2 or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive N or HxW, got {text!r}")
    return (vals[0], vals[1])
