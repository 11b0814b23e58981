"""`edge run --config site.yaml`: sources, model, lines, zones and outputs of a site in one file.

    model: models/default.onnx
    sources:
      - synthetic                       # a source as on the command line, or:
      - source: rtsp://10.0.0.5/stream1
        lines: {door: [0.1, 0.6, 0.9, 0.6]}          # this stream only
        zones: {bay: [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]]}
    lines: {}                           # every stream
    zones: {}
    anchor: bottom-center
    dwell_alert: 600                    # seconds
    outputs: {events: events.jsonl, snapshots: snaps/, webhook: "http://...", mqtt: "host:1883",
              jsonl: ..., save: ..., serve: ..., trace: ..., telemetry: ...}
    run: {conf: 0.3, device: cpu, ...}  # any other `edge run` flag, by its long name

Every error names the file, the line and the key (`site.yaml:7: sources[1].lines.door: ...`).
Command-line flags override the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge.analytics.geometry import ANCHORS, Line, Zone
from edge.errors import CONFIG_BYTES, EdgeError, read_text_bounded

OUTPUTS = ("events", "snapshots", "webhook", "mqtt", "jsonl", "save", "serve", "trace", "telemetry")
TOP = ("model", "sources", "lines", "zones", "anchor", "dwell_alert", "outputs", "run")


class ConfigError(EdgeError):
    """The site file cannot be read or says something invalid; the message names file:line: key."""


@dataclass(frozen=True)
class SourceConfig:
    spec: str
    lines: tuple[Line, ...] = ()
    zones: tuple[Zone, ...] = ()


@dataclass(frozen=True)
class SiteConfig:
    path: Path
    model: str | None = None
    sources: tuple[SourceConfig, ...] = ()
    lines: tuple[Line, ...] = ()  # every stream
    zones: tuple[Zone, ...] = ()
    anchor: str | None = None
    dwell_alert: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    run: dict[str, object] = field(default_factory=dict)
    lines_of: dict[str, int] = field(
        default_factory=dict
    )  # "run.conf" -> its line, for later errors

    def fail(self, key: str, message: str) -> ConfigError:
        """An error found after loading (an unknown flag under run:), naming the key's line."""
        return ConfigError(f"{self.path}:{self.lines_of.get(key, 1)}: {key}: {message}")


class _Reader:
    """Walks the YAML node tree, so every value keeps the line it was written on."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: object, key: str, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else 1  # type: ignore[attr-defined]
        return ConfigError(f"{self.path}:{line}: {key}: {message}")

    def mapping(self, node: object, key: str, allowed: tuple[str, ...] | None = None) -> dict:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, "expected a mapping (name: value)")
        out: dict = {}
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else None
            where = f"{key}.{name}" if key else str(name)
            if not isinstance(name, str) or not name:
                raise self.fail(k, key or "top level", "keys must be plain names")
            if name in out:
                raise self.fail(k, where, "given twice")
            if allowed is not None and name not in allowed:
                raise self.fail(k, where, f"unknown key; expected one of {', '.join(allowed)}")
            out[name] = v
        return out

    def scalar(self, node: object, key: str) -> object:
        import yaml

        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, "expected a single value")
        return yaml.safe_load(node.value) if node.style is None else node.value

    def text(self, node: object, key: str) -> str:
        value = self.scalar(node, key)
        if value is None or isinstance(value, (list, dict)) or str(value).strip() == "":
            raise self.fail(node, key, "expected a non-empty value")
        return str(value)

    def number(self, node: object, key: str) -> float:
        value = self.scalar(node, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(node, key, f"expected a number, got {value!r}")
        return float(value)

    def numbers(self, node: object, key: str) -> list[float]:
        """[x1, y1, ...], [[x1, y1], ...] or "x1,y1,..."."""
        import yaml

        if isinstance(node, yaml.ScalarNode):
            try:
                return [float(v) for v in str(self.scalar(node, key)).split(",")]
            except ValueError:
                raise self.fail(node, key, "expected numbers x1,y1,x2,y2,...") from None
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, key, "expected a list of numbers or of [x, y] points")
        out: list[float] = []
        for i, item in enumerate(node.value):
            if isinstance(item, yaml.SequenceNode):
                if len(item.value) != 2:
                    raise self.fail(item, f"{key}[{i}]", "a point is [x, y]")
                out += [self.number(v, f"{key}[{i}]") for v in item.value]
            else:
                out.append(self.number(item, f"{key}[{i}]"))
        return out

    def regions(self, node: object, key: str, kind: type) -> tuple:
        out = []
        for name, value in self.mapping(node, key).items():
            where = f"{key}.{name}"
            values = self.numbers(value, where)
            if len(values) % 2 or any(v < 0 for v in values):
                raise self.fail(value, where, "expected pairs of non-negative x, y coordinates")
            points = tuple(zip(values[::2], values[1::2], strict=True))
            if kind is Line and len(points) != 2:
                raise self.fail(
                    value, where, f"a line is 2 points (x1,y1,x2,y2), got {len(points)}"
                )
            try:
                out.append(kind(name, points))
            except ValueError as exc:
                raise self.fail(value, where, str(exc)) from None
        return tuple(out)


def _compose(path: Path) -> object:
    """The file's YAML node tree."""
    import yaml

    try:
        text = read_text_bounded(path, CONFIG_BYTES, f"--config {path}", ConfigError)
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: cannot read it (no such file)") from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    if root is None:
        raise ConfigError(f"{path}: the file is empty")
    return root


def _sources(r: _Reader, node: object) -> tuple[SourceConfig, ...]:
    import yaml

    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise r.fail(node, "sources", "expected a list of sources")
    sources = []
    for i, item in enumerate(node.value):
        key = f"sources[{i}]"
        if isinstance(item, yaml.ScalarNode):
            sources.append(SourceConfig(r.text(item, key)))
            continue
        m = r.mapping(item, key, ("source", "lines", "zones"))
        if "source" not in m:
            raise r.fail(item, key, "missing 'source' (what to read: a file, URL, camera index)")
        sources.append(
            SourceConfig(
                r.text(m["source"], f"{key}.source"),
                r.regions(m["lines"], f"{key}.lines", Line) if "lines" in m else (),
                r.regions(m["zones"], f"{key}.zones", Zone) if "zones" in m else (),
            )
        )
    return tuple(sources)


def load(path: str | Path) -> SiteConfig:
    """Read and check a site file.

    Raises:
        ConfigError: the file is missing, is not YAML, or a key is unknown or invalid.
    """
    path = Path(path)
    r = _Reader(path)
    top = r.mapping(_compose(path), "", TOP)
    anchor = r.text(top["anchor"], "anchor") if "anchor" in top else None
    if anchor is not None and anchor not in ANCHORS:
        raise r.fail(top["anchor"], "anchor", f"expected one of {', '.join(ANCHORS)}")
    dwell = r.number(top["dwell_alert"], "dwell_alert") if "dwell_alert" in top else None
    if dwell is not None and dwell <= 0:
        raise r.fail(top["dwell_alert"], "dwell_alert", "must be a positive number of seconds")
    outputs = {}
    if "outputs" in top:
        for k, v in r.mapping(top["outputs"], "outputs", OUTPUTS).items():
            outputs[k] = r.text(v, f"outputs.{k}")
    run, lines_of = {}, {k: v.start_mark.line + 1 for k, v in top.items()}
    if "run" in top:
        for k, v in r.mapping(top["run"], "run").items():
            run[k] = r.scalar(v, f"run.{k}")
            lines_of[f"run.{k}"] = v.start_mark.line + 1
    return SiteConfig(
        path=path,
        model=r.text(top["model"], "model") if "model" in top else None,
        sources=_sources(r, top["sources"]) if "sources" in top else (),
        lines=r.regions(top["lines"], "lines", Line) if "lines" in top else (),
        zones=r.regions(top["zones"], "zones", Zone) if "zones" in top else (),
        anchor=anchor,
        dwell_alert=dwell,
        outputs=outputs,
        run=run,
        lines_of=lines_of,
    )
