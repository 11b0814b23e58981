"""`edge run`'s lines, zones, events and site file: the flags, the --config merge, and the
`Analytics` processor they describe. Flags override the site file."""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli.argtypes import positive_float

if TYPE_CHECKING:
    from edge.analytics import Analytics
    from edge.cli.siteconfig import SiteConfig

log = logging.getLogger("edge")

_STREAM = re.compile(r"^(\d+):(.*)$")  # "1:door=..." -> the second source's line
ANALYTICS_FLAGS = ("line", "zone", "events", "snapshots", "webhook", "mqtt")


def _region(kind: str):  # noqa: ANN202 - an argparse type
    def parse(text: str) -> tuple[int | None, object]:
        from edge.analytics.geometry import parse_line, parse_zone

        m = _STREAM.match(text)
        stream, body = (int(m.group(1)), m.group(2)) if m else (None, text)
        try:
            return stream, (parse_line if kind == "line" else parse_zone)(body)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace(f"--{kind} ", "", 1)) from None

    return parse


def _mqtt(text: str) -> tuple[str, int]:
    from edge.analytics.delivery import parse_host_port

    try:
        return parse_host_port(text, "--mqtt", 1883)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edge.analytics.geometry import ANCHORS

    g = p.add_argument_group(
        "lines, zones and events (imply --track)",
        "Coordinates are pixels, or fractions of the frame when all are in [0, 1]; prefix I: "
        "(e.g. 1:door=...) for the I-th source only (from 0).",
    )
    g.add_argument(
        "--line", action="append", type=_region("line"), metavar="[I:]NAME=x1,y1,x2,y2",
        help='count crossings; "in" is crossing to the right of x1,y1 -> x2,y2 (repeatable)',
    )  # fmt: skip
    g.add_argument(
        "--zone", action="append", type=_region("zone"), metavar="[I:]NAME=x1,y1,x2,y2,x3,y3,...",
        help="a polygon: occupancy, entries, exits and dwell time (repeatable)",
    )  # fmt: skip
    g.add_argument(
        "--anchor", choices=tuple(ANCHORS), default="bottom-center",
        help="the point of a box that crosses lines and is in zones (default bottom-center)",
    )  # fmt: skip
    g.add_argument(
        "--dwell-alert", type=positive_float, metavar="SECONDS",
        help="a dwell event once an object stays this long in a zone",
    )  # fmt: skip
    g.add_argument("--events", type=Path, metavar="FILE", help="write events as JSON lines")
    g.add_argument("--snapshots", type=Path, metavar="DIR", help="a JPEG of each event's object")
    g.add_argument("--webhook", metavar="URL", help="POST each event as JSON (never blocks)")
    g.add_argument(
        "--mqtt", type=_mqtt, metavar="HOST:PORT",
        help="publish events to edge/<stream>/<region> and occupancy to edge/<stream>/<zone>/<class>",
    )  # fmt: skip
    g.add_argument(
        "--config", type=Path, metavar="SITE.yaml",
        help="sources, model, lines, zones and outputs in one file (flags override it)",
    )  # fmt: skip


# --- the site file ---------------------------------------------------------------------------------


def apply_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """`args` with what the site file says wherever the command line left the default."""
    from edge.cli.siteconfig import load

    config = load(args.config)
    args = argparse.Namespace(**vars(args))
    actions = {a.dest: a for a in parser._actions}  # noqa: SLF001
    by_flag = {s: a for a in parser._actions for s in a.option_strings}  # noqa: SLF001

    def unset(dest: str) -> bool:
        return getattr(args, dest) == parser.get_default(dest)

    if config.model and unset("model"):
        args.model = _relative(config, config.model)
    if config.sources and args.source is None and args.sources is None:
        args.source = [_spec(config, s.spec) for s in config.sources]
        per_stream = (
            [
                *((i, r) for i, s in enumerate(config.sources) for r in s.lines),
            ],
            [*((i, r) for i, s in enumerate(config.sources) for r in s.zones)],
        )
    else:
        if any(s.lines or s.zones for s in config.sources):
            log.warning(
                "%s: --source given: the file's per-source lines and zones are not used",
                config.path,
            )
        per_stream = [], []
    # Lines and zones add up; a flag's region replaces the file's of the same name and stream.
    args.line = _merge([(None, r) for r in config.lines] + per_stream[0], args.line)
    args.zone = _merge([(None, r) for r in config.zones] + per_stream[1], args.zone)
    if config.anchor and unset("anchor"):
        args.anchor = config.anchor
    if config.dwell_alert and unset("dwell_alert"):
        args.dwell_alert = config.dwell_alert
    for key, value in config.outputs.items():
        if unset(key):
            action = actions[key]
            setattr(args, key, _convert(config, f"outputs.{key}", action, value))
    for key, value in config.run.items():
        action = by_flag.get(f"--{key.replace('_', '-')}")
        if action is None or action.dest in ("config", "help", "line", "zone", "source"):
            raise config.fail(f"run.{key}", "not an `edge run` option (see edge run --help)")
        if unset(action.dest):
            setattr(args, action.dest, _convert(config, f"run.{key}", action, value))
    return args


def _relative(config: SiteConfig, value: str) -> Path:
    """A path in the site file is relative to the file's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else config.path.parent / path


def _spec(config: SiteConfig, spec: str) -> str:
    """A source that names a file or folder beside the site file is read from there."""
    beside = config.path.parent / spec
    return str(beside) if not Path(spec).is_absolute() and beside.exists() else spec


def _merge(base: list, flags: list | None) -> list | None:
    out = {(s, r.name): (s, r) for s, r in base}
    out.update({(s, r.name): (s, r) for s, r in flags or []})
    return list(out.values()) or None


def _convert(config: SiteConfig, key: str, action: argparse.Action, value: object) -> object:
    if action.nargs == 0:  # a switch
        if not isinstance(value, bool):
            raise config.fail(key, f"expected true or false, got {value!r}")
        return value if action.const is True else (not value if action.const is False else value)
    try:
        converted = action.type(str(value)) if action.type else str(value)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise config.fail(key, str(exc)) from None
    if action.choices is not None and converted not in action.choices:
        raise config.fail(key, f"expected one of {', '.join(map(str, action.choices))}")
    if isinstance(converted, Path) and not converted.is_absolute():
        converted = config.path.parent / converted
    return converted


# --- the processor ---------------------------------------------------------------------------------


def wanted(args: argparse.Namespace) -> bool:
    return bool(args.line or args.zone)


def check(args: argparse.Namespace, streams: int) -> None:
    """Errors that need the number of streams, and outputs asked for with nothing to count."""
    for flag in ("line", "zone"):
        for stream, region in getattr(args, flag) or []:
            if stream is not None and stream >= streams:
                raise ValueError(
                    f"--{flag} {stream}:{region.name}: there are only {streams} source(s) (0-{streams - 1})"
                )
    if not wanted(args):
        given = [f"--{f}" for f in ANALYTICS_FLAGS[2:] if getattr(args, f)]
        if given or args.dwell_alert:
            raise ValueError(f"{', '.join(given) or '--dwell-alert'}: needs a --line or --zone")


def build(
    args: argparse.Namespace,
    ids: list[str],
    sources: list,
    names: tuple[str, ...],
    stack: contextlib.ExitStack,
) -> Analytics | None:
    """The Analytics processor with its outputs opened in `stack`; None without lines and zones."""
    if not wanted(args):
        return None
    from edge.analytics import Analytics, EventLog, RegionOptions

    regions = {}
    for i, sid in enumerate(ids):
        lines = tuple(r for s, r in args.line or [] if s in (None, i))
        zones = tuple(r for s, r in args.zone or [] if s in (None, i))
        if lines or zones:
            regions[sid] = RegionOptions(lines, zones, args.anchor, dwell_alert_s=args.dwell_alert)
    outputs: list = []
    if args.events:
        outputs.append(EventLog(args.events))
    if args.webhook:
        from edge.analytics.delivery import Webhook

        outputs.append(Webhook(args.webhook))
    if args.mqtt:
        from edge.analytics.delivery import Mqtt

        outputs.append(Mqtt(*args.mqtt))
    snapshots = None
    if args.snapshots:
        from edge.analytics.snapshots import Snapshots

        snapshots = Snapshots(args.snapshots)
    # Files and the synthetic scene are timed by frame index (dwell in video time); live sources
    # by capture time.
    fps = {sid: s.fps for sid, s in zip(ids, sources, strict=True) if not s.live and s.fps}
    analytics = Analytics(regions, names=names, outputs=outputs, snapshots=snapshots, fps=fps)
    return stack.enter_context(analytics)
