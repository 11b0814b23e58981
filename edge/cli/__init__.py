"""The `edge` command line: the only place that reads argv and environment variables.

Each sub-command lives in its own module under `edge.cli` with two functions:
`add_parser(subparsers)` registers its arguments and `main(args) -> int` runs it. A sub-command
module imports its heavy dependencies (TensorFlow, Keras) inside `main`, never at import time, so
`edge run` and `edge --help` stay free of them.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator

from edge import __version__
from edge.cli.quiet import library_log_level, quiet_libraries
from edge.errors import EdgeError

# Sub-command modules, in the order `edge --help` lists them.
GLOBAL_FLAGS = ("-v", "--verbose")  # flags of `edge` itself, before the sub-command
COMMANDS = ("run", "info", "telemetry", "data", "train", "eval", "export", "bench")


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and one line, as every bad input does."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edge",
        description="Real-time object detection on edge devices: train, export, run.",
    )
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"edge.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"edge.cli.{name}":
                continue  # a sub-command not built yet
            raise
        module.add_parser(sub)
    show_ranges(parser)
    return parser


def show_ranges(parser: argparse.ArgumentParser) -> None:
    """Append each ranged flag's range (see edge.cli.argtypes) to its --help line, everywhere."""
    for action in parser._actions:  # noqa: SLF001
        text = getattr(action.type, "range_text", None)
        if text and action.help != argparse.SUPPRESS and text not in (action.help or ""):
            action.help = f"{action.help}; range {text}" if action.help else f"range {text}"
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for child in set(action.choices.values()):
                show_ranges(child)


def main(argv: list[str] | None = None) -> int:
    """The `edge` command; `argv` None: this process is it (`edge`, `python -m edge`), and its
    piped stderr is filtered for the process's life (`quiet.filter_native_stderr`); a caller
    that passes `argv` keeps its own fd 2."""
    whole_process = argv is None
    argv = sys.argv[1:] if argv is None else argv
    quiet_libraries(verbose=bool({"-v", "--verbose"} & set(argv)), whole_process=whole_process)
    parser = build_parser()
    # `edge` alone (or with run's flags only) runs the embedded demo, like `edge run`; global
    # flags (-v) may come first either way.
    lead = 0
    while lead < len(argv) and argv[lead] in GLOBAL_FLAGS:
        lead += 1
    rest = argv[lead:]
    if not rest or rest[0].startswith("-") and rest[0] not in ("-h", "--help", "--version"):
        argv = [*argv[:lead], "run", *rest]
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=library_log_level(args.verbose),
        format="%(levelname)s %(name)s: %(message)s" if args.verbose else "%(message)s",
    )
    logging.getLogger("edge").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with sigterm_interrupts():
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"edge {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _caused_by_interrupt(exc):  # e.g. a native module's import turns it into ImportError
            print(f"edge {args.command}: interrupted", file=sys.stderr)
            return 130
        if isinstance(exc, (EdgeError, ValueError)):
            print(f"edge {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise
    finally:
        if whole_process:
            # What the command left for the garbage collector (an interrupted `fit`'s frames
            # hold a tf.data iterator whose thread runs Python) is finalised now, while the
            # interpreter runs: at its teardown TensorFlow logged a "finalizing
            # GeneratorDataset iterator" error and could abort the process (exit -6).
            gc.collect()


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C in every command: half-written outputs are removed and the exit
    code is 130, as for SIGINT (not the 143 of an unhandled SIGTERM). `edge run` replaces it with
    its own two-stage handler (the first signal finishes the frame in hand, a second aborts)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
