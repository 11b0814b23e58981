"""Delivery never blocks: a real loopback HTTP server and a real mosquitto broker, each killed,
slowed and restarted mid-run; what was sent, dropped or given up is counted."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edge.analytics.delivery import Mqtt, Outbox, Webhook, parse_host_port
from edge.analytics.events import Event


def event(i: int, stream: str = "cam", zone: str = "bay") -> Event:
    return Event(
        "enter", stream, i, i / 30, 1e9 + i, 7, 0, "person", 0.9, (1.0, 2.0, 3.0, 4.0), zone=zone
    )


def wait_for(check, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


SOCKET_CALLS = ("connect", "connect_ex", "send", "sendall", "sendto", "recv", "recv_into")


def send_like_the_loop(sink, frames: range, fps: float = 200.0) -> int:
    """Send one event per frame like the loop does; the socket calls (connect, send, receive) the
    sink made on this thread meanwhile: 0 when delivery never makes the loop wait on the network,
    however slow or gone the receiver is (a fact about threads, not a time a busy machine moves)."""
    me, calls = threading.get_ident(), []
    originals = {name: getattr(socket.socket, name) for name in SOCKET_CALLS}

    def spy(name):
        def call(self, *args, **kwargs):
            if threading.get_ident() == me:
                calls.append(name)
            return originals[name](self, *args, **kwargs)

        return call

    for name in SOCKET_CALLS:
        setattr(socket.socket, name, spy(name))
    try:
        for i in frames:
            sink.send([event(i)], {("cam", "bay"): {"person": 1}})
            time.sleep(1 / fps)
    finally:
        for name, original in originals.items():
            setattr(socket.socket, name, original)
    return len(calls)


# --- the outbox ---------------------------------------------------------------------------------


def test_outbox_retries_with_backoff_then_gives_up_and_counts():
    calls: list[float] = []

    def flaky(item):
        calls.append(time.monotonic())
        if item == "bad" or len(calls) < 3:
            raise ConnectionError("down")

    with Outbox("t", flaky, capacity=4, retries=3, backoff_s=0.05, backoff_max_s=0.1) as box:
        assert box.put("good")
        assert wait_for(lambda: box.stats.sent == 1, 5)
        assert box.put("bad")
        assert wait_for(lambda: box.stats.failed == 1, 5)
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert len(calls) == 3 + 4 and gaps[0] >= 0.045 and gaps[1] >= 0.095  # 0.05, then 0.1 s
    assert (box.stats.sent, box.stats.failed, box.stats.retries) == (1, 1, 5)


def test_outbox_never_blocks_and_counts_what_did_not_fit():
    gate = threading.Event()
    box = Outbox("t", lambda item: gate.wait(), capacity=3, retries=0)
    accepted: list[bool] = []
    putter = threading.Thread(target=lambda: accepted.extend(box.put(i) for i in range(100)))
    putter.start()
    putter.join(timeout=30)  # a hang guard: put never waits for the sender...
    assert not putter.is_alive() and not gate.is_set()  # ...which is still blocked on the gate
    assert 3 <= sum(accepted) <= 4 and box.stats.dropped == 100 - sum(accepted)
    gate.set()
    box.close(timeout=2)
    assert box.stats.sent + box.stats.dropped + box.stats.unsent == 100


def test_a_receiver_never_reached_is_named_unreachable_not_a_full_queue():
    down = Outbox("t", lambda item: (_ for _ in ()).throw(ConnectionError("refused")),
                  retries=100, backoff_s=0.05)  # fmt: skip
    down.stats.target = "broker 127.0.0.1:9"
    for i in range(5):
        assert down.put(i)
    down.close(timeout=0.2)
    s = down.stats
    assert (s.sent, s.dropped, s.failed + s.unsent) == (0, 0, 5)
    assert s.line("mqtt") == "mqtt: broker 127.0.0.1:9 unreachable: 5 events not sent"
    up = Outbox("t", lambda item: None)
    up.stats.target = "broker 127.0.0.1:9"
    assert up.put(1)
    up.close()
    assert up.stats.line("mqtt") == "mqtt: 1 sent, 0 dropped (queue full), 0 failed"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("localhost:1884", ("localhost", 1884)),
        ("broker", ("broker", 1883)),
        ("[::1]:9", ("::1", 9)),
    ],
)
def test_parse_host_port(text, expected):
    assert parse_host_port(text, "--mqtt", 1883) == expected


@pytest.mark.parametrize("text", ["host:x", ":1883", "host:0", "host:70000"])
def test_parse_host_port_rejects(text):
    with pytest.raises(ValueError, match="--mqtt"):
        parse_host_port(text, "--mqtt", 1883)


def test_webhook_rejects_a_non_http_url():
    with pytest.raises(ValueError, match="--webhook 'ftp://x'"):
        Webhook("ftp://x")


# --- webhook against a real loopback server -----------------------------------------------------


class Receiver:
    """A loopback HTTP server that records the JSON it is POSTed; it can be slowed and restarted."""

    def __init__(self, port: int = 0, delay: float = 0.0) -> None:
        self.got: list[dict] = []
        self.delay = delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                receiver.got.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def frames(self) -> set[int]:
        return {e["frame"] for e in self.got}


def test_webhook_delivers_through_a_receiver_restart_without_blocking():
    rx = Receiver()
    hook = Webhook(
        f"http://127.0.0.1:{rx.port}/events", timeout_s=0.5, capacity=50, retries=3,
        backoff_s=0.05, backoff_max_s=0.2,
    )  # fmt: skip
    on_loop = [send_like_the_loop(hook, range(0, 10))]
    assert wait_for(lambda: rx.frames == set(range(10)))
    assert rx.got[0]["zone"] == "bay" and rx.got[0]["kind"] == "enter"
    rx.stop()  # the receiver goes down mid-run
    on_loop.append(send_like_the_loop(hook, range(10, 30)))
    rx = Receiver(rx.port)  # and comes back on the same port
    on_loop.append(send_like_the_loop(hook, range(30, 40)))
    assert wait_for(lambda: set(range(30, 40)) <= rx.frames)  # delivery resumed
    hook.close()
    rx.stop()
    s = hook.stats
    assert s.sent + s.dropped + s.failed == 40 and s.retries > 0
    assert s.sent >= 20  # before and after the outage
    assert on_loop == [0, 0, 0]  # the loop never waited on the receiver


def test_the_thread_check_sees_a_sink_that_posts_on_the_callers_thread():
    """The check above can fail: a sink posting in `send` itself is seen making socket calls."""
    import urllib.request

    rx = Receiver()

    class Blocking:
        def send(self, events, counts):
            body = json.dumps({"frame": events[0].frame}).encode()
            urllib.request.urlopen(f"http://127.0.0.1:{rx.port}/", body, timeout=5).close()

    try:
        assert send_like_the_loop(Blocking(), range(3)) >= 3 * 3  # connect, send, receive each
    finally:
        rx.stop()
    assert rx.frames == {0, 1, 2}


def test_a_slow_webhook_drops_and_counts_instead_of_slowing_the_loop():
    rx = Receiver(delay=0.3)
    hook = Webhook(f"http://127.0.0.1:{rx.port}/", timeout_s=2.0, capacity=5, retries=0)
    assert send_like_the_loop(hook, range(60)) == 0
    hook.outbox.close(timeout=0.5)
    rx.stop()
    s = hook.stats
    assert s.dropped >= 40 and s.sent >= 1 and s.sent + s.dropped + s.failed + s.unsent == 60


# --- MQTT against a real mosquitto broker -------------------------------------------------------

pytestmark_mqtt = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not shutil.os.path.exists("/usr/sbin/mosquitto"),
    reason="mosquitto is not installed (Debian package mosquitto; .ci/run installs it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on 127.0.0.1:port, started and killed by the test."""

    def __init__(self, tmp_path, port: int) -> None:
        self.port = port
        conf = tmp_path / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert wait_for(self._listening, 10), "mosquitto did not start"

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


class Subscriber:
    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.got: list[tuple[str, bytes, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *a: c.subscribe("edge/#", qos=1)
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, m.payload, m.retain))
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def frames(self, topic: str) -> set[int]:
        return {json.loads(p)["frame"] for t, p, _ in self.got if t == topic}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytestmark_mqtt
def test_mqtt_delivers_through_a_broker_restart_without_blocking(tmp_path):
    port = free_port()
    broker = Broker(tmp_path, port)
    sub = Subscriber(port)
    assert wait_for(lambda: sub.client.is_connected(), 10)
    time.sleep(0.2)  # the subscription is acknowledged
    mq = Mqtt("127.0.0.1", port, timeout_s=0.5, capacity=100, retries=4, backoff_s=0.1)
    topic = "edge/cam/bay"
    try:
        on_loop = [send_like_the_loop(mq, range(0, 10))]
        assert wait_for(lambda: sub.frames(topic) == set(range(10)))
        assert ("edge/cam/bay/person", b"1", False) in sub.got  # occupancy by class
        broker.kill()  # the broker dies mid-run
        on_loop.append(send_like_the_loop(mq, range(10, 30)))
        broker = Broker(tmp_path, port)  # and is restarted
        on_loop.append(send_like_the_loop(mq, range(30, 40)))
        assert wait_for(lambda: set(range(30, 40)) <= sub.frames(topic), 20)  # resumed
        assert on_loop == [0, 0, 0]  # the loop never waited on the broker
    finally:
        mq.close()
        sub.close()
        broker.kill()
    s = mq.stats
    assert s.sent >= 20 and s.retries > 0
    assert s.sent + s.dropped + s.failed == 80  # 40 events + 40 occupancy updates


@pytestmark_mqtt
def test_mqtt_topics_are_safe_for_any_stream_id(tmp_path):
    port = free_port()
    broker = Broker(tmp_path, port)
    sub = Subscriber(port)
    assert wait_for(lambda: sub.client.is_connected(), 10)
    time.sleep(0.2)
    mq = Mqtt("127.0.0.1", port)
    try:
        mq.send([event(1, stream="rtsp://cam/1#a+b")], {})
        assert wait_for(lambda: any(t.startswith("edge/rtsp___cam_1_a_b/") for t, *_ in sub.got))
    finally:
        mq.close()
        sub.close()
        broker.kill()
