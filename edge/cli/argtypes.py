"""Argument types shared by the sub-commands: each rejects a bad value with one clear line.

Every numeric flag has a range. A ranged type carries its range as text (`range_text`) and
`edge.cli.show_ranges` adds it to the flag's --help line, so the range is written once.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

MAX_SIDE = 8192  # pixels: input sizes, camera and synthetic frame sides
MAX_THREADS = 1024
MAX_SEED = 2**32 - 1  # numpy's seed range


def _number(text: str, cast: type, what: str) -> float:
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


class Ranged:
    """A whole number or a number within [least, most] (least excluded when `open_low`)."""

    def __init__(
        self, cast: type, least: float, most: float, *, open_low: bool = False, what: str = ""
    ) -> None:
        self.cast, self.least, self.most, self.open_low = cast, least, most, open_low
        self.what = what or ("a whole number" if cast is int else "a number")
        self.range_text = f"{'(' if open_low else '['}{_fmt(least)}, {_fmt(most)}]"
        self.__name__ = self.what  # argparse names the type in its own messages

    def __call__(self, text: str) -> float:
        v = _number(text, self.cast, self.what)
        low_ok = v > self.least if self.open_low else v >= self.least
        if not (low_ok and v <= self.most) or (isinstance(v, float) and not math.isfinite(v)):
            raise argparse.ArgumentTypeError(f"must be in {self.range_text}, got {_fmt(v)}")
        return v


def integer(least: int, most: int) -> Ranged:
    """A whole number in [least, most]."""
    return Ranged(int, least, most)


def number(least: float, most: float, *, open_low: bool = False) -> Ranged:
    """A finite number in [least, most] ((least, most] with open_low)."""
    return Ranged(float, least, most, open_low=open_low)


def whole(least: int, most: int = 10**9) -> Callable[[str], int]:
    """A whole number >= least (and <= most)."""
    return integer(least, most)


positive_int = integer(1, 10**9)
positive_float = number(0.0, 1e9, open_low=True)
non_negative_float = number(0.0, 1e9)
fraction = Ranged(float, 0.0, 1.0, what="a number in [0, 1]")  # score thresholds
overlap = Ranged(float, 0.0, 1.0, open_low=True, what="a number in (0, 1]")  # IoU thresholds
seed = integer(0, MAX_SEED)
threads = integer(0, MAX_THREADS)
side = integer(1, MAX_SIDE)  # --width/--height
fps = number(0.0, 1000.0, open_low=True)


class _Imgsz:
    range_text = f"each side in [1, {MAX_SIDE}]"
    __name__ = "imgsz"

    def __call__(self, text: str) -> tuple[int, int]:
        """N or HxW (also H,W) -> (height, width)."""
        parts = [p for p in text.lower().replace("x", ",").split(",") if p.strip()]
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
        vals = vals * 2 if len(vals) == 1 else vals
        if len(vals) != 2 or min(vals) < 1:
            raise argparse.ArgumentTypeError(f"expected positive N or HxW, got {text!r}")
        if max(vals) > MAX_SIDE:
            raise argparse.ArgumentTypeError(f"each side must be in [1, {MAX_SIDE}], got {text!r}")
        return (vals[0], vals[1])


imgsz = _Imgsz()


def device(choices: Sequence[str]) -> Callable[[str], str]:
    """One of `choices` (ONNX Runtime devices), or triton://HOST:PORT/MODEL: a model on a Triton
    Inference Server."""

    def parse(text: str) -> str:
        if text in choices:
            return text
        if text.startswith("triton://"):
            from edge.runtime.remote_address import TritonAddress

            try:
                TritonAddress.parse(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
            return text
        known = f"one of {', '.join(choices)} or " if choices else ""
        raise argparse.ArgumentTypeError(f"expected {known}triton://HOST:PORT/MODEL, got {text!r}")

    return parse
