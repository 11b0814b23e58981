"""Inference on a Triton Inference Server: the model runs there, everything else stays here.

`RemoteSession` answers the loop as `edge.runtime.session.ModelSession` does (contract, input
shape and dtype, `run`, `run_many`), over Triton's gRPC protocol (`tritonclient`, imported only
when a `triton://` device is used). The contract comes from the model's config on the server
(`edge export --triton` keeps the ONNX metadata there), so no local model file is needed, and the
model gate checks the remote model exactly as it checks a local one, with a trial request.

Several frames in one `run_many` go out as concurrent requests, so the server's dynamic batcher
can put them (and other clients' frames) in one execution. On this host the tensors travel
through system shared memory (`edge.runtime.remote_shm`). A server that stops answering is an
outage, as a lost camera is: the request waits while the server is polled with exponential
backoff, then is sent again; after the last attempt `ServerLost` ends the run (exit 3).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from edge.errors import ModelError, ServerLost
from edge.runtime.contract import ModelContract, from_metadata
from edge.runtime.gate import check_model
from edge.runtime.remote_address import SCHEME, RemoteOptions, TritonAddress
from edge.runtime.server_stats import ServerStats
from edge.runtime.session import Call, SessionOptions, input_size
from edge.sources import Drops, SourceEvent

log = logging.getLogger(__name__)

CONTRACT_KEY = "edge.metadata"  # the config parameter holding the model's ONNX metadata (JSON)
# gRPC codes that mean "the server is not there (now)", not "this request is wrong".
OUTAGE = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "UNKNOWN")
TYPES = {"UINT8": "tensor(uint8)", "FP32": "tensor(float)", "FP16": "tensor(float16)"}
NP_TYPES = {np.dtype(np.uint8): "UINT8", np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16"}
STATS_EVERY_S = 1.0


class RemoteSession:
    """A model on a Triton server, ready to run: see the module docstring."""

    concurrent = True  # run_many sends its frames at once

    def __init__(
        self,
        device: str,
        options: SessionOptions | None = None,
        remote: RemoteOptions | None = None,
    ) -> None:
        try:
            import tritonclient.grpc as grpcclient
        except ImportError:
            raise ModelError(
                f"--device {device}: talking to Triton needs tritonclient: pip install 'edge[triton]'"
            ) from None
        self._grpc = grpcclient
        self.address = TritonAddress.parse(device)
        self.options = options or SessionOptions(device=device)
        self.remote_options = remote or RemoteOptions()
        self.source = f"model {self.address.model} on {SCHEME}{self.address.url}"
        self.path = None
        self.providers = ["triton"]
        self.fell_back = False
        self.events: list[SourceEvent] = []
        self._last_ok = time.perf_counter_ns()
        self._drops = Drops()  # a server that keeps dropping is lost, as a live source is
        self.shm: Any = None
        self._stop = threading.Event()
        self._stats_lock = threading.Lock()
        self.stats_start = self._stats_last = self._carried = ServerStats()
        self._server_ns = 0
        started = time.perf_counter()
        self.client = grpcclient.InferenceServerClient(self.address.url)
        try:
            self._open()
        except BaseException as exc:
            self._stop.set()
            self._release()
            if isinstance(exc, grpcclient.InferenceServerException):  # the server, mid-start
                raise ModelError(f"{self.source}: {_first(exc)}") from None
            raise
        self.load_seconds = time.perf_counter() - started
        self.stats_start = self._stats_last = self._poll_stats() or ServerStats()
        self._poller = threading.Thread(target=self._poll_loop, name="triton-stats", daemon=True)
        self._poller.start()

    def _open(self) -> None:
        """Check the server and the model, read its config and contract, run the model gate."""
        self._check_server()
        a, r = self.address, self.remote_options
        self.metadata = self.client.get_model_metadata(a.model, a.version, as_json=True)
        self.config = self.client.get_model_config(a.model, a.version, as_json=True)["config"]
        self.server = self.client.get_server_metadata(as_json=True)
        self.max_batch = int(self.config.get("max_batch_size", 0)) or None
        self.input_name = self.metadata["inputs"][0]["name"] if self.metadata.get("inputs") else ""
        self.output_names = [o["name"] for o in self.metadata.get("outputs", [])]
        if r.shm == "on" or (r.shm == "auto" and a.local):
            from edge.runtime.remote_shm import SharedMemory

            self.shm = SharedMemory(self.client, self.metadata, self.max_batch)
        self.contract = self._contract()
        self.check = check_model(_GateView(self), self.contract, self.source)
        self.contract = self.check.contract
        self.input_shape = list(self.check.input_shape)
        self.input_dtype = self.check.input_dtype.type

    # --- what the loop reads --------------------------------------------------------------------

    @property
    def device(self) -> str:
        return "triton"

    @property
    def intra_threads(self) -> int:
        """No ONNX Runtime threads here: the server runs the model."""
        return 0

    def describe(self) -> str:
        return f"{self.address.model} on {self.address} (Triton {self.server.get('version', '?')}, {self.platform})"

    @property
    def platform(self) -> str:
        return self.config.get("backend") or self.config.get("platform") or "?"

    def input_size(self, imgsz: tuple[int, int] | None = None) -> tuple[int, int]:
        return input_size(self.input_shape, self.contract, imgsz)

    def warm_up(self, imgsz: tuple[int, int], runs: int | None = None) -> float:
        h, w = imgsz
        shape = (1, 3, h, w) if self.contract.layout == "NCHW" else (1, h, w, 3)
        started = time.perf_counter()
        for _ in range(self.options.warmup if runs is None else runs):
            self.run(np.zeros(shape, self.input_dtype))
        return time.perf_counter() - started

    # --- inference ------------------------------------------------------------------------------

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.run_many([tensor])[0].outputs

    def run_many(
        self, tensors: Sequence[np.ndarray], stalled: Callable[[], bool] | None = None
    ) -> list[Call]:
        """One request per tensor, all in flight at once; through an outage they wait and are
        sent again (ServerLost when the server stays away)."""
        tensors = [
            t if t.dtype == self.input_dtype else t.astype(self.input_dtype) for t in tensors
        ]
        while True:
            try:
                calls = self._send(tensors)
            except _Outage as exc:
                self._reconnect(str(exc), stalled)
                continue
            self._last_ok = time.perf_counter_ns()
            server = self._server_ns
            for c in calls:
                c.network_ns = max(0, c.end_ns - c.start_ns - server) if server else 0
            return calls

    def _send(self, tensors: list[np.ndarray]) -> list[Call]:
        a = self.address
        done = [threading.Event() for _ in tensors]
        results: list[Any] = [None] * len(tensors)
        starts = [0] * len(tensors)
        ends = [0] * len(tensors)

        def callback(i: int) -> Callable[[Any, Any], None]:
            def cb(result: Any, error: Any) -> None:
                ends[i] = time.perf_counter_ns()
                results[i] = error if error is not None else result
                done[i].set()

            return cb

        for i, (inp, outs) in enumerate(self._requests(tensors)):
            starts[i] = time.perf_counter_ns()
            try:
                self.client.async_infer(
                    a.model, [inp], callback(i), a.version, outputs=outs,
                    client_timeout=self.remote_options.timeout_s,
                )  # fmt: skip
            except Exception as exc:  # the channel refused at once
                results[i], ends[i] = exc, time.perf_counter_ns()
                done[i].set()
        for d in done:
            d.wait()
        calls = []
        for i, r in enumerate(results):
            if isinstance(r, Exception):
                raise self._classify(r)
            if self.shm is not None and self.shm.has_outputs:
                outputs = self.shm.outputs(i, r)
            else:
                outputs = [np.array(r.as_numpy(n), copy=True) for n in self.output_names]
            calls.append(Call(outputs, starts[i], ends[i]))
        return calls

    def _requests(self, tensors: list[np.ndarray]) -> list[tuple[Any, list[Any] | None]]:
        """Each tensor as a request input (in shared memory when it is on), with the outputs
        to ask for (None: all, in the response)."""
        g = self._grpc
        inputs = [g.InferInput(self.input_name, list(x.shape), NP_TYPES[x.dtype]) for x in tensors]
        if self.shm is not None:
            try:
                return [
                    (inp, self.shm.bind(i, inp, x, g))
                    for i, (inp, x) in enumerate(zip(inputs, tensors, strict=True))
                ]
            except Exception as exc:  # a full /dev/shm, a server that refuses the region
                log.warning(
                    "%s: shared memory failed (%s); sending tensors in the requests",
                    self.source,
                    _first(exc),
                )
                self.shm.close()
                self.shm = None
                inputs = [
                    g.InferInput(self.input_name, list(x.shape), NP_TYPES[x.dtype]) for x in tensors
                ]
        for inp, x in zip(inputs, tensors, strict=True):
            inp.set_data_from_numpy(np.ascontiguousarray(x))
        return [(inp, None) for inp in inputs]

    def _classify(self, exc: Exception) -> Exception:
        status = str(getattr(exc, "status", lambda: "")() or "")
        text = str(exc)
        if any(code in status for code in OUTAGE) or "unknown model" in text.lower():
            return _Outage(text.strip().splitlines()[0][:200] if text.strip() else status)
        first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
        return ModelError(f"{self.source}: the server refused the request: {first}")

    # --- outages --------------------------------------------------------------------------------

    def _check_server(self) -> None:
        a = self.address
        try:
            live = self.client.is_server_live(client_timeout=self.remote_options.timeout_s)
        except Exception as exc:
            raise ModelError(
                f"--device {a}: no Triton server answers at {a.url} ({_first(exc)}); start it, or "
                "check the host and gRPC port (Triton's default is 8001)"
            ) from None
        if not live:
            raise ModelError(f"--device {a}: the server at {a.url} is not live")
        if not self.client.is_model_ready(
            a.model, a.version, client_timeout=self.remote_options.timeout_s
        ):
            names = self._models()
            raise ModelError(
                f"--device {a}: the server has no ready model {a.model!r}"
                + (f" (version {a.version})" if a.version else "")
                + (f"; it has: {', '.join(names)}" if names else "")
            )

    def _models(self) -> list[str]:
        with contextlib.suppress(Exception):
            index = self.client.get_model_repository_index(as_json=True).get("models", [])
            return [f"{m['name']} ({m.get('state', '?').lower()})" for m in index]
        return []

    def _ready(self) -> bool:
        a, t = self.address, min(2.0, self.remote_options.timeout_s)
        with contextlib.suppress(Exception):
            return bool(self.client.is_server_ready(client_timeout=t)) and bool(
                self.client.is_model_ready(a.model, a.version, client_timeout=t)
            )
        return False

    def _reconnect(self, why: str, stalled: Callable[[], bool] | None) -> None:
        r = self.remote_options
        lost_at, since = time.perf_counter_ns(), self._last_ok
        name = f"server {self.address}"
        self.events.append(SourceEvent("lost", lost_at, why, since_ns=since))
        if self._drops.lost(lost_at):
            dropping = self._drops.describe(lost_at)
            self.events.append(SourceEvent("gave_up", lost_at, f"keeps dropping ({dropping})",
                                           since, 0, None))  # fmt: skip
            log.error("%s: keeps dropping (%s); given up", name, dropping)
            raise ServerLost(
                f"{name}: keeps dropping ({dropping}); check the server's log and its host"
            )
        log.warning("%s: lost (%s); reconnecting (up to %d attempts)", name, why, r.attempts)
        wait = r.backoff[0]
        for attempt in range(1, r.attempts + 1):
            if _sleep(wait, stalled):
                raise ServerLost(f"{name}: stopped while waiting for the server")
            if self._ready():
                if self.shm is not None:
                    self.shm.register()  # a restarted server forgot the regions
                now = time.perf_counter_ns()
                outage = (now - since) / 1e6
                self.events.append(
                    SourceEvent("reconnected", now, f"after {outage:.0f} ms", since, attempt, None)
                )
                log.warning("%s: reconnected after %.1f s", name, outage / 1000)
                return
            wait = min(wait * 2, r.backoff[1])
        now = time.perf_counter_ns()
        self.events.append(
            SourceEvent("gave_up", now, f"after {r.attempts} attempts", since, r.attempts, None)
        )
        log.error("%s: gave up after %d reconnect attempts", name, r.attempts)
        raise ServerLost(f"{name}: gone for good (no answer after {r.attempts} reconnect attempts)")

    @property
    def gave_up(self) -> bool:
        return any(e.kind == "gave_up" for e in self.events)

    # --- the server's own statistics ------------------------------------------------------------

    def _poll_stats(self, timeout_s: float = 2.0) -> ServerStats | None:
        a = self.address
        with contextlib.suppress(Exception):
            raw = self.client.get_inference_statistics(
                a.model, a.version, as_json=True, client_timeout=timeout_s
            )
            return ServerStats.of(raw)
        return None

    def _poll_loop(self) -> None:
        while not self._stop.wait(STATS_EVERY_S):
            self._update(self._poll_stats())

    def _update(self, now: ServerStats | None) -> None:
        """Take a poll in: the mean server time per request over the window since the last one
        (for `network_ns`); a restarted server counts from zero again, so what it had counted
        for this session is carried over."""
        if now is None:
            return
        with self._stats_lock:
            last = self._stats_last
            if now.executions < last.executions:  # the server restarted
                self._carried = self._carried.plus(last.since(self.stats_start))
                self.stats_start = last = ServerStats()
            window = now.since(last)
            if window.requests > 0:
                self._server_ns = window.request_ns // window.requests
            self._stats_last = now

    def server_stats(self) -> ServerStats:
        """What the server did for this model since this session opened (every client's share);
        after `close()`, as of closing."""
        if not self._stop.is_set():
            self._update(self._poll_stats(self.remote_options.timeout_s))
        with self._stats_lock:
            return self._carried.plus(self._stats_last.since(self.stats_start))

    def close(self) -> None:
        """Take the server's last statistics, remove the shared memory, close the connection."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._poller.is_alive():
            self._poller.join(timeout=5)
        self._update(self._poll_stats(self.remote_options.timeout_s))
        self._release()

    def _release(self) -> None:
        if self.shm is not None:
            self.shm.close()
            self.shm = None
        with contextlib.suppress(Exception):
            self.client.close()

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _contract(self) -> ModelContract:
        param = self.config.get("parameters", {}).get(CONTRACT_KEY, {}).get("string_value")
        if not param:
            raise ModelError(
                f"{self.source}: its config has no edge contract (parameter {CONTRACT_KEY!r}); "
                "write the repository with `edge export MODEL --triton REPO`"
            )
        try:
            meta = json.loads(param)
        except ValueError as exc:
            raise ModelError(
                f"{self.source}: unreadable {CONTRACT_KEY!r} parameter ({exc})"
            ) from None
        if not isinstance(meta, dict):
            raise ModelError(f"{self.source}: the {CONTRACT_KEY!r} parameter is not a JSON object")
        return from_metadata({str(k): str(v) for k, v in meta.items()}, source=self.source)


class _Outage(Exception):
    """The server did not answer (internal: turned into a reconnect)."""


class _GateView:
    """The remote model as the model gate reads a local ONNX Runtime session."""

    def __init__(self, session: RemoteSession) -> None:
        self.session = session

    def get_inputs(self) -> list[SimpleNamespace]:
        s = self.session
        inputs = s.metadata.get("inputs", [])
        views = []
        for i in inputs:
            dims: list[int | str | None] = [int(d) if int(d) > 0 else None for d in i["shape"]]
            if s.max_batch and dims:
                dims[0] = "batch"
            views.append(
                SimpleNamespace(
                    name=i["name"], shape=dims, type=TYPES.get(i["datatype"], i["datatype"])
                )
            )
        return views

    def run(
        self, _names: object, feed: dict[str, np.ndarray], _options: object = None
    ) -> list[np.ndarray]:
        (x,) = feed.values()
        if self.session.max_batch and len(x) > self.session.max_batch:
            raise ModelError(
                f"batch {len(x)} is over the server's max_batch_size {self.session.max_batch}"
            )
        try:
            return self.session._send([x])[0].outputs
        except _Outage as exc:
            raise ModelError(f"{self.session.source}: {exc}") from None


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _sleep(seconds: float, stalled: Callable[[], bool] | None) -> bool:
    """Wait `seconds`, asking `stalled` every 0.25 s; True when it said stop."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if stalled is not None and stalled():
            return True
        time.sleep(min(0.25, left))
    return stalled is not None and stalled()
