"""What the counts say: the end-of-run table, Prometheus text and the counting error against truth."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge.analytics.counting import StreamCounter

Key = tuple[str, str, str, str]  # (stream, region, class name, "in" | "out" | "enter" | "exit")


def _name(counter: StreamCounter, class_id: int) -> str:
    names = counter.names
    return names[class_id] if 0 <= class_id < len(names) else str(class_id)


def flat_counts(counter: StreamCounter) -> dict[Key, int]:
    """Every non-zero count of a stream as one flat table, to compare two runs or a run with truth."""
    out: dict[Key, int] = {}
    s = counter.stream
    for line, c in counter.line_counts.items():
        for cid, (n_in, n_out) in c.by_class.items():
            out[(s, line, _name(counter, cid), "in")] = n_in
            out[(s, line, _name(counter, cid), "out")] = n_out
    for zone, z in counter.zone_counts.items():
        for cid, n in z.entries.items():
            out[(s, zone, _name(counter, cid), "enter")] = n
        for cid, n in z.exits.items():
            out[(s, zone, _name(counter, cid), "exit")] = n
    return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class CountError:
    """Counts of a run against the true counts: `error` is the sum of |counted - true| over every
    (stream, region, class, direction); `rate` that sum over the true total."""

    counted: int
    true: int
    error: int

    @property
    def rate(self) -> float:
        return self.error / self.true if self.true else float(self.error > 0)


def count_error(counted: Mapping[Key, int], true: Mapping[Key, int]) -> CountError:
    keys = set(counted) | set(true)
    err = sum(abs(counted.get(k, 0) - true.get(k, 0)) for k in keys)
    return CountError(sum(counted.values()), sum(true.values()), err)


def summary_table(
    counters: Mapping[str, StreamCounter], truth: Mapping[str, StreamCounter] | None = None
) -> str:
    """A plain-text table: per stream and region, counts by class (and the true counts)."""
    rows = [("stream", "region", "class", "in/enter", "out/exit", "occupancy", "dwell alerts")]
    if truth:
        rows[0] += ("true in/enter", "true out/exit")
    for sid, c in counters.items():
        t = flat_counts(truth[sid]) if truth and sid in truth else None
        for line, lc in c.line_counts.items():
            for cid, (n_in, n_out) in sorted(lc.by_class.items()) or [(-1, (0, 0))]:
                name = _name(c, cid) if cid >= 0 else "-"
                row = (sid, f"line {line}", name, str(n_in), str(n_out), "", "")
                rows.append(row + _true(t, sid, line, name, "in", "out"))
        for zone, z in c.zone_counts.items():
            for cid in sorted(set(z.entries) | set(z.exits)) or [-1]:
                name = _name(c, cid) if cid >= 0 else "-"
                row = (
                    sid, f"zone {zone}", name, str(z.entries.get(cid, 0)),
                    str(z.exits.get(cid, 0)), str(z.occupancy.get(cid, 0)), str(z.dwells.get(cid, 0)),
                )  # fmt: skip
                rows.append(row + _true(t, sid, zone, name, "enter", "exit"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if truth:
        counted = {k: v for c in counters.values() for k, v in flat_counts(c).items()}
        true = {k: v for c in truth.values() for k, v in flat_counts(c).items()}
        e = count_error(counted, true)
        lines.append(
            f"counting error against the truth: {e.error} of {e.true} true counts "
            f"({e.rate:.1%}); counted {e.counted}"
        )
    return "\n".join(lines)


def _true(t: dict | None, sid: str, region: str, name: str, a: str, b: str) -> tuple[str, ...]:
    if t is None:
        return ()
    return str(t.get((sid, region, name, a), 0)), str(t.get((sid, region, name, b), 0))


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(counters: Mapping[str, StreamCounter], delivery: Mapping[str, object] = {}) -> str:
    """Prometheus text: crossings, zone entries/exits/dwell alerts (counters), occupancy (gauge),
    and events sent/dropped/failed per delivery (counters)."""
    out: list[str] = []

    def family(name: str, kind: str, help_: str) -> None:
        out.extend((f"# HELP {name} {help_}", f"# TYPE {name} {kind}"))

    family("edge_line_crossings_total", "counter", "Objects that crossed a line, by direction.")
    for sid, c in counters.items():
        for line, lc in c.line_counts.items():
            for cid, (n_in, n_out) in sorted(lc.by_class.items()):
                lab = f'source="{_esc(sid)}",line="{line}",class="{_esc(_name(c, cid))}"'
                out.append(f'edge_line_crossings_total{{{lab},direction="in"}} {n_in}')
                out.append(f'edge_line_crossings_total{{{lab},direction="out"}} {n_out}')
    zone_families = (
        ("edge_zone_entries_total", "counter", "Objects that entered a zone.", "entries"),
        ("edge_zone_exits_total", "counter", "Objects that left a zone.", "exits"),
        ("edge_zone_dwell_alerts_total", "counter", "Objects that stayed past --dwell-alert.", "dwells"),
        ("edge_zone_occupancy", "gauge", "Objects in a zone now.", "occupancy"),
    )  # fmt: skip
    for name, kind, help_, attr in zone_families:
        family(name, kind, help_)
        for sid, c in counters.items():
            for zone, z in c.zone_counts.items():
                for cid, n in sorted(getattr(z, attr).items()):
                    lab = f'source="{_esc(sid)}",zone="{zone}",class="{_esc(_name(c, cid))}"'
                    out.append(f"{name}{{{lab}}} {n}")
    if delivery:
        family("edge_events_delivered_total", "counter", "Events sent to a receiver.")
        family_rows = []
        for sink, stats in delivery.items():
            for what in ("sent", "dropped", "failed", "unsent"):
                family_rows.append(
                    f'edge_events_delivered_total{{sink="{sink}",outcome="{what}"}} '
                    f"{getattr(stats, what)}"
                )
        out += family_rows
    return "\n".join(out) + "\n"
