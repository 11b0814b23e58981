"""Telemetry as a picture: stage latencies over time and their distributions (matplotlib, lazily)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import EdgeError
from edge.outputs.telemetry_file import read_records
from edge.runtime.timing import STAGES

STAGE_COLUMNS = tuple(f"{name}_ms" for name in STAGES)


def plot_telemetry(path: str | Path, out: str | Path) -> Path:
    """Write a PNG: stacked stage times and end-to-end latency per frame, and per-stage histograms."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgeError("plotting needs matplotlib: pip install 'edge[plot]'") from None
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"-o {out}: use a .png file name")
    if not out.parent.exists():
        raise ValueError(f"-o {out}: folder {out.parent} does not exist")
    rows = read_records(path, required=("t_ms", *STAGE_COLUMNS, "latency_ms"))
    t = np.array([float(r["t_ms"]) for r in rows]) / 1000
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [2, 1]})
    bottom = np.zeros(len(rows))
    for col in STAGE_COLUMNS:
        v = np.array([float(r[col]) for r in rows])
        ax1.fill_between(t, bottom, bottom + v, step="mid", alpha=0.7, label=col[:-3])
        bottom += v
    lat = np.array([float(r["latency_ms"]) for r in rows])
    ax1.plot(t, lat, color="black", lw=0.8, label="latency (capture to result)")
    ax1.set_xlabel("capture time (s)")
    ax1.set_ylabel("ms")
    ax1.set_title(f"{Path(path).name}: per-frame stage times")
    ax1.legend(loc="upper right", fontsize=8)
    data = [np.array([float(r[c]) for r in rows]) for c in (*STAGE_COLUMNS, "latency_ms")]
    ax2.boxplot(data, vert=False, showfliers=True)
    ax2.set_yticks(range(1, len(data) + 1), [c[:-3] for c in (*STAGE_COLUMNS, "latency_ms")])
    ax2.set_xlabel("ms")
    p95 = np.percentile(lat, 95)
    ax2.set_title(f"distribution (latency p50 {np.median(lat):.1f} ms, p95 {p95:.1f} ms)")
    fig.tight_layout()
    from edge.outputs import files

    try:
        files.write_atomic(out, "--out", lambda t: fig.savefig(t, dpi=100), files.check_nonempty)
    finally:
        plt.close(fig)
    return out
