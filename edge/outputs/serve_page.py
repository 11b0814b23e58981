"""The page `edge run --serve` shows: live streams and telemetry charts, self-contained (no CDN)."""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{margin:0;font:14px system-ui,sans-serif;background:#14171c;color:#d8dde4}
 header{display:flex;gap:16px;align-items:baseline;padding:8px 16px;background:#1d2229}
 header h1{font-size:16px;margin:0} #status{color:#8fd18f} #status.bad{color:#ff7b72}
 main{display:flex;gap:16px;padding:12px 16px;align-items:flex-start}
 #streams{display:flex;flex-wrap:wrap;gap:8px;width:648px}
 figure{margin:0;flex:1 1 320px;max-width:640px} figure.one{flex-basis:640px}
 figure img{width:100%;display:block;background:#000;min-height:120px}
 figcaption{font-size:12px;color:#9aa4b1;padding:2px 0}
 #charts{display:flex;flex-direction:column;gap:10px}
 canvas{background:#1d2229;border-radius:4px;display:block}
 a{color:#79b8ff}
</style></head>
<body>
<header><h1>__TITLE__</h1><span id="status">connecting</span><span id="summary"></span>
<a href="/metrics">metrics</a><a href="/telemetry.json">telemetry.json</a></header>
<main><section id="streams"></section>
<section id="charts">
<canvas id="latency" width="560" height="210"></canvas>
<canvas id="fps" width="560" height="170"></canvas>
<canvas id="stages" width="560" height="190"></canvas>
</section></main>
<script>
"use strict";
const COLORS = ["#ff8c42", "#4cc9f0", "#b5e48c", "#f72585", "#ffd166", "#9d4edd", "#06d6a0", "#ef476f"];
const shown = new Set();

function addStreams(sources) {
  const box = document.getElementById("streams");
  for (const s of sources) {
    if (shown.has(s.id)) continue;
    shown.add(s.id);
    const fig = document.createElement("figure");
    if (sources.length === 1) fig.className = "one";
    const img = document.createElement("img");
    img.src = s.stream; img.alt = s.id;
    const cap = document.createElement("figcaption");
    cap.id = "cap-" + s.index; cap.textContent = s.id;
    fig.append(img, cap); box.append(fig);
  }
}

function frame(ctx, w, h, title, ymax, unit) {
  ctx.fillStyle = "#1d2229"; ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#2f3742"; ctx.fillStyle = "#9aa4b1"; ctx.font = "11px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = 24 + (h - 44) * i / 4;
    ctx.beginPath(); ctx.moveTo(44, y); ctx.lineTo(w - 8, y); ctx.stroke();
    ctx.fillText((ymax * (1 - i / 4)).toFixed(ymax < 10 ? 1 : 0), 4, y + 4);
  }
  ctx.fillStyle = "#d8dde4"; ctx.font = "12px sans-serif";
  ctx.fillText(title + " (" + unit + ")", 48, 15);
}

function lines(id, title, unit, series) {
  const c = document.getElementById(id), ctx = c.getContext("2d");
  let ymax = 1, tmin = Infinity, tmax = -Infinity;
  for (const s of series) for (let i = 0; i < s.y.length; i++) {
    ymax = Math.max(ymax, s.y[i]); tmin = Math.min(tmin, s.t[i]); tmax = Math.max(tmax, s.t[i]);
  }
  ymax *= 1.15;
  frame(ctx, c.width, c.height, title, ymax, unit);
  const span = Math.max(tmax - tmin, 1e-3), x0 = 46, x1 = c.width - 10, y0 = 24, y1 = c.height - 20;
  series.forEach((s, k) => {
    ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    s.y.forEach((v, i) => {
      const x = x0 + (x1 - x0) * (s.t[i] - tmin) / span, y = y1 - (y1 - y0) * v / ymax;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke(); ctx.setLineDash([]);
    if (k < 4) { ctx.fillStyle = s.color; ctx.fillText(s.label, 50 + 130 * k, c.height - 5); }
  });
}

function bars(id, title, stages, sources) {
  const c = document.getElementById(id), ctx = c.getContext("2d");
  let vmax = 1;
  for (const s of sources) for (const st of stages) vmax = Math.max(vmax, s.stage_ms[st] || 0);
  vmax *= 1.15;
  frame(ctx, c.width, c.height, title, vmax, "ms, recent mean");
  const slot = (c.width - 60) / stages.length, bw = Math.max(4, (slot - 10) / sources.length);
  stages.forEach((st, i) => {
    const x = 50 + i * slot;
    sources.forEach((s, k) => {
      const v = s.stage_ms[st] || 0, h = (c.height - 44) * v / vmax;
      ctx.fillStyle = COLORS[s.index % COLORS.length];
      ctx.fillRect(x + k * bw, c.height - 20 - h, bw - 2, h);
    });
    ctx.fillStyle = "#9aa4b1"; ctx.fillText(st, x, c.height - 6);
  });
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const r = await fetch("/telemetry.json", {cache: "no-store"});
    const d = await r.json();
    addStreams(d.sources);
    const lat = [], fps = [];
    let frames = 0, dropped = 0;
    for (const s of d.sources) {
      const col = COLORS[s.index % COLORS.length], t = s.series.t_s;
      lat.push({t, y: s.series.latency_ms, color: col, label: s.id + " latency"});
      lat.push({t, y: s.series.inference_ms, color: col, dash: [5, 4], label: "inference"});
      fps.push({t, y: s.series.fps, color: col, label: s.id});
      frames += s.frames; dropped += s.dropped;
      const cap = document.getElementById("cap-" + s.index);
      if (cap) cap.textContent = s.id + "  " + s.fps.toFixed(1) + " FPS  " +
        s.latency_ms.toFixed(1) + " ms  dropped " + s.dropped;
    }
    lines("latency", "latency, capture to result; dashed: inference", "ms", lat);
    lines("fps", "throughput", "FPS", fps);
    const waits = d.sources.map(s => (s.stage_ms.wait || 0).toFixed(1)).join(", ");
    bars("stages", "time per stage (waiting for frames: " + waits + ")",
         d.stages.filter(st => st !== "wait"), d.sources);
    status.textContent = d.health; status.className = d.health === "ok" ? "" : "bad";
    document.getElementById("summary").textContent = frames + " frames, " + dropped + " dropped";
  } catch (e) {
    status.textContent = "disconnected"; status.className = "bad";
  }
}
poll();
setInterval(poll, 500);
</script></body></html>
"""
