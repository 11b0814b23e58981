"""`edge data inspect` and `edge data synth`: look at a dataset, or write the synthetic one.

Imports of the data layer happen inside the handlers, so `edge --help` stays light.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.cli.argtypes import fraction, integer, seed
from edge.errors import EdgeError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="inspect a dataset or write the synthetic one", description=__doc__
    )
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    inspect = commands.add_parser(
        "inspect",
        help="summarise a YOLO, COCO or VOC dataset and list its problems",
        description="Summarise a dataset (YOLO data.yaml or folder, COCO JSON, Pascal VOC folder) "
        "and list every problem found. Exit code 1 when there are problems, unless --skip-bad.",
    )
    inspect.add_argument("path", type=Path, help="data.yaml, COCO .json, or dataset folder")
    inspect.add_argument(
        "--skip-bad", action="store_true", help="problems are fine: they would be skipped (exit 0)"
    )
    inspect.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    inspect.add_argument("--val-fraction", type=fraction, default=0.2, help="for unsplit datasets")
    inspect.add_argument("--seed", type=seed, default=0, help="for unsplit datasets")
    inspect.set_defaults(handler=run_inspect)

    synth = commands.add_parser(
        "synth",
        help="write a synthetic dataset (YOLO layout)",
        description="Render a synthetic dataset with the scene renderer of the `synthetic` source.",
    )
    synth.add_argument("--out", type=Path, required=True, help="new or empty folder")
    synth.add_argument(
        "--images", type=integer(1, 1_000_000), required=True, metavar="N", help="number of images"
    )
    synth.add_argument("--seed", type=seed, default=0, help="same seed, same dataset")
    synth.add_argument("--imgsz", type=integer(32, 4096), default=320, help="image side in pixels")
    synth.add_argument("--val-fraction", type=fraction, default=0.2, help="share of images in val")
    synth.set_defaults(handler=run_synth)


def run_inspect(args: argparse.Namespace) -> int:
    from edge.data.inspect import inspect_dataset
    from edge.outputs.files import check_outputs, input_files

    check_outputs([("--json", args.json)], [args.path, *_dataset_files(args.path, input_files)])
    # The report lists every problem; the loader's per-problem warnings would repeat them.
    data_logger = logging.getLogger("edge.data")
    level = data_logger.level
    if not getattr(args, "verbose", False):
        data_logger.setLevel(logging.ERROR)
    try:
        with _one_line_os_errors():
            report = inspect_dataset(args.path, val_fraction=args.val_fraction, seed=args.seed)
    finally:
        data_logger.setLevel(level)
    print(report.to_text())
    if args.json is not None:
        from edge.outputs import files

        text = json.dumps(report.to_dict(), indent=2) + "\n"
        files.write_text(args.json, "--json", text, files.check_json)
    if report.problems and not args.skip_bad:
        print(
            f"{len(report.problems)} problem(s): training refuses this dataset "
            "unless given --skip-bad",
            file=sys.stderr,
        )
        return 1
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from edge.data.synth import write_synthetic

    # SIGTERM unwinds like Ctrl-C (edge.cli), so the half-built dataset is removed (exit 130).
    with _one_line_os_errors():
        yaml_path = write_synthetic(
            args.out,
            images=args.images,
            seed=args.seed,
            imgsz=args.imgsz,
            val_fraction=args.val_fraction,
            progress=sys.stderr.isatty(),  # a bar on a terminal only
        )
    print(f"wrote {yaml_path}")
    return 0


def _dataset_files(path: Path, input_files: object) -> list[Path]:
    """The dataset's own files one level down (annotations/, labels/...): an output must not be one."""
    if not path.is_dir():
        return []
    return [f for sub in path.iterdir() if sub.is_dir() for f in input_files([sub])]


@contextmanager
def _one_line_os_errors() -> Iterator[None]:
    """A file that cannot be read or written is the user's to fix: one line, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise EdgeError(f"{exc.filename or ''}: {exc.strerror or exc}") from None


def main(args: argparse.Namespace) -> int:
    """Run the `edge data` sub-command that `args` selects."""
    return int(args.handler(args))
