"""From boxes to answers: lines and zones per stream, crossings, visits, dwell, events and their
delivery. Runtime code: numpy and OpenCV (paho-mqtt only for --mqtt, PyYAML only for --config).

    geometry.py    Line, Zone, anchor points, parsing NAME=x1,y1,...
    counting.py    StreamCounter: crossings and visits of tracked objects, with hysteresis
    events.py      Event and the --events JSONL file
    delivery.py    Outbox (bounded, retrying, never blocking), Webhook, Mqtt
    snapshots.py   JPEG crops of each event's object
    overlay.py     lines, zones and counts drawn on a frame
    report.py      summary table, Prometheus text, counting error against truth
    processor.py   Analytics: all of it for the streams of a run
"""

from __future__ import annotations

from edge.analytics.counting import RegionOptions, StreamCounter
from edge.analytics.events import Event, EventLog
from edge.analytics.geometry import Line, Zone, parse_line, parse_zone
from edge.analytics.processor import Analytics

__all__ = [
    "Analytics",
    "Event",
    "EventLog",
    "Line",
    "RegionOptions",
    "StreamCounter",
    "Zone",
    "parse_line",
    "parse_zone",
]
