"""Where a model on a Triton Inference Server is (`triton://HOST:PORT/MODEL[/VERSION]`) and how
to talk to it (`RemoteOptions`): parsed and checked before anything connects."""

from __future__ import annotations

from dataclasses import dataclass

from edge.runtime.session import REMOTE

SCHEME = REMOTE  # "triton://"
DEFAULT_PORT = 8001  # Triton's gRPC port
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SHM_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class TritonAddress:
    """`triton://HOST[:PORT]/MODEL[/VERSION]`, parsed."""

    host: str
    port: int
    model: str
    version: str = ""

    @classmethod
    def parse(cls, text: str) -> TritonAddress:
        usage = f"--device {text!r}: expected triton://HOST:PORT/MODEL (e.g. triton://127.0.0.1:8001/default)"
        if not text.startswith(SCHEME):
            raise ValueError(usage)
        rest = text[len(SCHEME) :]
        where, _, path = rest.partition("/")
        parts = [p for p in path.split("/") if p]
        if not where or not parts or len(parts) > 2:
            raise ValueError(usage)
        host, port = where, DEFAULT_PORT
        if where.startswith("["):  # [::1]:8001
            host, _, tail = where[1:].partition("]")
            if tail.startswith(":"):
                port = _port(tail[1:], usage)
        elif where.count(":") == 1:
            host, p = where.split(":")
            port = _port(p, usage)
        if not host:
            raise ValueError(usage)
        version = parts[1] if len(parts) == 2 else ""
        if version and not (version.isascii() and version.isdigit()):
            raise ValueError(f"{usage}; a version is a number, got {version!r}")
        return cls(host, port, parts[0], version)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def local(self) -> bool:
        return self.host in LOOPBACK

    def __str__(self) -> str:
        tail = f"/{self.version}" if self.version else ""
        return f"{SCHEME}{self.url}/{self.model}{tail}"


def _port(text: str, usage: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ValueError(f"{usage}; the port must be 1..65535, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class RemoteOptions:
    """How to talk to the server. `shm`: system shared memory for the tensors (auto: when the
    server is on this host). `timeout_s`: the longest one request may take before it counts as an
    outage. Reconnects: `attempts` per outage, backoff from `backoff[0]` doubling to `backoff[1]`
    seconds (as for a lost camera, `--reconnect`; shorter waits: asking a server is cheap)."""

    shm: str = "auto"
    timeout_s: float = 10.0
    attempts: int = 10
    backoff: tuple[float, float] = (0.25, 2.0)

    def __post_init__(self) -> None:
        if self.shm not in SHM_MODES:
            raise ValueError(
                f"--triton-shm must be one of {', '.join(SHM_MODES)}, got {self.shm!r}"
            )
        if not 0 < self.timeout_s <= 3600:
            raise ValueError(f"--read-timeout must be in (0, 3600] seconds, got {self.timeout_s}")
        if self.attempts < 0:
            raise ValueError(f"--reconnect must be >= 0, got {self.attempts}")
