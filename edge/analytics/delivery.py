"""Delivery of events to other systems without ever blocking the loop.

`Outbox` is a bounded queue with one worker thread: `put` returns at once (dropping, and counting,
what does not fit), the worker sends each item and retries a failure with exponential backoff, and
gives an item up (counted) after `retries` attempts. `Webhook` POSTs each event as JSON; `Mqtt`
publishes it to a broker (paho-mqtt, reconnecting on its own) under `edge/<stream>/<region>`,
and the zone's occupancy by class, retained, under `edge/<stream>/<zone>/<class>`, as Frigate does.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from edge.analytics.events import Event
from edge.errors import EdgeError

log = logging.getLogger(__name__)


@dataclass
class DeliveryStats:
    sent: int = 0
    dropped: int = 0  # the queue was full: the receiver is down or slower than events come
    failed: int = 0  # given up after every retry
    retries: int = 0
    unsent: int = 0  # still queued when the run ended: the receiver did not take them in time
    reached: bool = False  # the receiver answered at least once (connected, or took an item)
    target: str = ""  # the receiver, for messages: "broker HOST:PORT", a URL
    unit: str = "events"  # what the items are

    def line(self, sink: str) -> str:
        """The run summary's line: counts, or that the receiver was never reached."""
        lost = self.dropped + self.failed + self.unsent
        if self.target and not self.reached and lost:
            return f"{sink}: {self.target} unreachable: {lost} {self.unit} not sent"
        text = (
            f"{sink}: {self.sent} sent, {self.dropped} dropped (queue full), {self.failed} failed"
        )
        return text + (f", {self.unsent} not sent by the end" if self.unsent else "")


class Outbox:
    """Sends items from a bounded queue in a worker thread; a context manager."""

    def __init__(
        self,
        name: str,
        send: Callable[[object], None],
        capacity: int = 1000,
        retries: int = 5,
        backoff_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        if capacity < 1 or retries < 0 or backoff_s <= 0 or backoff_max_s < backoff_s:
            raise ValueError(
                f"{name}: capacity >= 1, retries >= 0 and 0 < backoff_s <= backoff_max_s, got "
                f"{capacity}, {retries}, {backoff_s}, {backoff_max_s}"
            )
        self.name, self._send = name, send
        self.retries, self.backoff_s, self.backoff_max_s = retries, backoff_s, backoff_max_s
        self.stats = DeliveryStats()
        self._queue: queue.Queue = queue.Queue(capacity)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"outbox-{name}", daemon=True)
        self._thread.start()

    def put(self, item: object) -> bool:
        """Queue `item`; False (and one more drop) when the queue is full or closed. Never blocks."""
        try:
            if self._closed:
                raise queue.Full
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            with self._lock:
                self.stats.dropped += 1
            return False

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            self._deliver(item)

    def _deliver(self, item: object) -> None:
        wait = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                self._send(item)
            except Exception as exc:  # a receiver's failure must never reach the loop
                if attempt == self.retries or self._stop.is_set():
                    log.debug("%s: giving an event up: %s", self.name, exc)
                    with self._lock:
                        self.stats.failed += 1
                    return
                with self._lock:
                    self.stats.retries += 1
                if self._stop.wait(wait):  # closing: one last try, no more waiting
                    wait = 0.0
                wait = min(wait * 2, self.backoff_max_s) if wait else 0.0
            else:
                with self._lock:
                    self.stats.sent += 1
                    self.stats.reached = True
                return

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued for up to `timeout` seconds, then count the rest as unsent."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        while self._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        left = 0
        while True:
            try:
                self._queue.get_nowait()
                left += 1
            except queue.Empty:
                break
        with self._lock:
            self.stats.unsent += left
        self._thread.join(timeout=max(deadline - time.monotonic(), 0) + 1.0)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Webhook:
    """`--webhook URL`: an HTTP POST of each event's JSON."""

    def __init__(self, url: str, timeout_s: float = 2.0, capacity: int = 1000, **outbox: object):
        if not re.match(r"^https?://", url):
            raise ValueError(f"--webhook {url!r}: expected an http:// or https:// URL")
        self.url, self.timeout_s = url, timeout_s
        self.outbox = Outbox("webhook", self._post, capacity, **outbox)  # type: ignore[arg-type]
        self.outbox.stats.target = url

    def _post(self, body: object) -> None:
        req = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )  # type: ignore[arg-type]
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            resp.read()

    def send(self, events: list[Event], counts: dict | None = None) -> None:
        for e in events:
            self.outbox.put(json.dumps(e.to_dict()).encode())

    @property
    def stats(self) -> DeliveryStats:
        return self.outbox.stats

    def close(self) -> None:
        self.outbox.close()

    def __enter__(self) -> Webhook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def topic_part(text: str) -> str:
    """A stream id or name made safe as one MQTT topic level (no '/', '+', '#')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text) or "_"


def parse_host_port(text: str, flag: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = text.strip(), str(default_port)
    try:
        value = int(port)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected HOST:PORT") from None
    if not host or not 0 < value <= 65535:
        raise ValueError(f"{flag} {text!r}: expected HOST:PORT with a port in [1, 65535]")
    return host.strip("[]"), value


class Mqtt:
    """`--mqtt HOST:PORT`: events to `<prefix>/<stream>/<region>` (QoS 1) and each zone's
    occupancy by class, retained, to `<prefix>/<stream>/<zone>/<class>`.

    Raises:
        EdgeError: paho-mqtt is not installed.
    """

    def __init__(
        self,
        host: str,
        port: int = 1883,
        prefix: str = "edge",
        timeout_s: float = 2.0,
        capacity: int = 1000,
        **outbox: object,
    ) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise EdgeError("--mqtt needs paho-mqtt: pip install paho-mqtt") from None
        self.host, self.port, self.prefix, self.timeout_s = host, port, prefix, timeout_s
        self._connected = threading.Event()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="", clean_session=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda *a: self._connected.clear()
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._client.max_queued_messages_set(capacity)
        self.outbox = Outbox("mqtt", self._publish, capacity, **outbox)  # type: ignore[arg-type]
        self.outbox.stats.target = f"broker {host}:{port}"
        self.outbox.stats.unit = "messages"  # events and retained zone counts
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()  # paho's own network thread connects and reconnects

    def _on_connect(
        self, client: object, userdata: object, flags: object, reason: object, *_: object
    ) -> None:
        if not getattr(reason, "is_failure", False):
            self.outbox.stats.reached = True
            self._connected.set()

    def _publish(self, item: object) -> None:
        topic, payload, retain = item  # type: ignore[misc]
        if not self._connected.wait(self.timeout_s):
            raise ConnectionError(f"not connected to {self.host}:{self.port}")
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(self.timeout_s)
        if not info.is_published():
            raise ConnectionError(f"no acknowledgement from {self.host}:{self.port}")

    def send(self, events: list[Event], occupancy: dict | None = None) -> None:
        """Queue the events and, for zones they touched, the zone's occupancy by class name."""
        zones = set()
        for e in events:
            topic = f"{self.prefix}/{topic_part(e.stream)}/{e.region}"
            self.outbox.put((topic, json.dumps(e.to_dict()), False))
            if e.zone is not None:
                zones.add((e.stream, e.zone))
        for stream, zone in sorted(zones):
            for cls, n in ((occupancy or {}).get((stream, zone)) or {}).items():
                topic = f"{self.prefix}/{topic_part(stream)}/{zone}/{topic_part(cls)}"
                self.outbox.put((topic, str(n), True))

    @property
    def stats(self) -> DeliveryStats:
        return self.outbox.stats

    def close(self) -> None:
        self.outbox.close()
        self._client.loop_stop()
        self._client.disconnect()

    def __enter__(self) -> Mqtt:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
