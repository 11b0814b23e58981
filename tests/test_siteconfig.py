"""`--config site.yaml`: a good file read whole, and every kind of mistake named by line and key."""

from __future__ import annotations

import textwrap

import pytest

from edge.cli.siteconfig import ConfigError, load

GOOD = """\
model: models/default.onnx
sources:
  - synthetic
  - source: rtsp://10.0.0.5/stream1
    lines:
      door: [0.1, 0.6, 0.9, 0.6]
    zones:
      bay: [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]]
lines:
  mid: "0,0.5,1,0.5"
anchor: center
dwell_alert: 600
outputs:
  events: events.jsonl
  mqtt: localhost:1883
run:
  conf: 0.3
  track: true
  device: cpu
"""


def write(tmp_path, text: str):
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_site_file(tmp_path):
    c = load(write(tmp_path, GOOD))
    assert c.model == "models/default.onnx"
    assert [s.spec for s in c.sources] == ["synthetic", "rtsp://10.0.0.5/stream1"]
    assert c.sources[1].lines[0].points == ((0.1, 0.6), (0.9, 0.6))
    assert c.sources[1].zones[0].name == "bay" and len(c.sources[1].zones[0].points) == 4
    assert c.lines[0].name == "mid" and c.lines[0].points == ((0, 0.5), (1, 0.5))
    assert (c.anchor, c.dwell_alert) == ("center", 600.0)
    assert c.outputs == {"events": "events.jsonl", "mqtt": "localhost:1883"}
    assert c.run == {"conf": 0.3, "track": True, "device": "cpu"}


@pytest.mark.parametrize(
    "text, where, message",
    [
        ("modle: x\n", "1: modle", "unknown key; expected one of model, sources"),
        ("sources:\n  - synthetic\n  - lines: {}\n", "3: sources[1]", "missing 'source'"),
        ("sources: synthetic\n", "1: sources", "expected a list of sources"),
        ("lines:\n  door: [1, 2, 3]\n", "2: lines.door", "pairs of non-negative"),
        ("lines:\n  door: [1, 2, 3, 4, 5, 6]\n", "2: lines.door", "a line is 2 points"),
        ("lines:\n  door: [1, 1, 1, 1]\n", "2: lines.door", "end points are the same"),
        ("zones:\n  bay: [[0, 0], [1, 1]]\n", "2: zones.bay", "at least 3 points"),
        ("zones:\n\n  bay: [[0, 0], [1, x], [0, 1]]\n", "3: zones.bay[1]", "expected a number"),
        ("zones:\n  bad name: [0, 0, 1, 0, 1, 1]\n", "2: zones.bad name", "letters, digits"),
        ("anchor: feet\n", "1: anchor", "expected one of bottom-center"),
        ("dwell_alert: -5\n", "1: dwell_alert", "positive"),
        ("dwell_alert: soon\n", "1: dwell_alert", "expected a number"),
        ("outputs:\n  events: a.jsonl\n  webhok: http://x\n", "3: outputs.webhok", "unknown key"),
        ("outputs:\n  events: [a, b]\n", "2: outputs.events", "expected a single value"),
        ("model: a\nmodel: b\n", "2: model", "given twice"),
        ("run: [1, 2]\n", "1: run", "expected a mapping"),
        ("- a\n- b\n", "1: ", "expected a mapping"),
        ("model: [unclosed\n", "2", "not valid YAML"),
    ],
)
def test_errors_name_the_line_and_the_key(tmp_path, text, where, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}:{where}"), str(err.value)
    assert message in str(err.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ConfigError, match="--config .*nope.yaml: cannot read"):
        load(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="the file is empty"):
        load(write(tmp_path, "# nothing\n"))


def test_later_errors_still_name_the_line(tmp_path):
    c = load(write(tmp_path, GOOD))
    assert str(c.fail("run.device", "no such device")).endswith(
        "site.yaml:19: run.device: no such device"
    )
