"""`edge telemetry plot FILE -o latency.png`: stage latencies over time and their distribution."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("telemetry", help="plot a telemetry file written by `edge run --telemetry`")
    tsub = p.add_subparsers(
        dest="telemetry_command", metavar="ACTION", required=True, parser_class=type(p)
    )
    plot = tsub.add_parser(
        "plot", help="stage latencies over time and their distribution, as a PNG"
    )
    plot.add_argument("file", type=Path, help="telemetry .jsonl or .csv")
    plot.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("latency.png"),
        help="output PNG (default latency.png)",
    )
    plot.set_defaults(handler=main_plot)


def main_plot(args: argparse.Namespace) -> int:
    from edge.outputs.files import check_outputs
    from edge.outputs.telemetry_plot import plot_telemetry

    check_outputs([("--out", args.out)], [args.file])
    print(f"wrote {plot_telemetry(args.file, args.out)}")
    return 0
