"""A real Triton Inference Server on this machine, for trying and testing `--device triton://`.

Runs the `tritonserver` binary that the `nvidia-pytriton` wheel ships (Triton 2.51, CPU, its Python
backend) on a model repository written by `edge export --triton`, with ONNX Runtime as a
Python-based backend named `onnxruntime` (scripts/triton_backend/model.py) in place of Triton's
C++ one, which only NVIDIA's containers carry. The wheel is fetched once with pip
(`--no-deps --target`, ~150 MB, into $TMPDIR/edge-tests unless EDGE_TEST_CACHE says where; never
under $HOME): it pins numpy<2, so it is not installed into the environment; the server's Python backend runs this
interpreter's own packages (onnxruntime, numpy).

    python scripts/triton_server.py REPO --port 8001                 # until Ctrl-C
    python scripts/triton_server.py REPO --port 8001 -- CMD ARGS...  # run CMD, then stop
    python scripts/triton_server.py --fetch                          # only fetch the wheel
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTRITON = "nvidia-pytriton==0.7.0"
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("EDGE_TEST_CACHE", Path(tempfile.gettempdir()) / "edge-tests"))


def pytriton_home() -> Path:
    """The folder holding `pytriton/tritonserver` and `nvidia_pytriton.libs`, fetched on first use."""
    home = CACHE / PYTRITON.replace("==", "-")
    if (home / "pytriton" / "tritonserver" / "bin" / "tritonserver").is_file():
        return home
    tmp = Path(tempfile.mkdtemp(prefix=".pytriton-", dir=CACHE if CACHE.is_dir() else None))
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-deps", "--target", str(tmp), PYTRITON],
        check=True, timeout=1200,
    )  # fmt: skip
    if home.exists():
        shutil.rmtree(home)
    tmp.rename(home)
    return home


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class TritonServer:
    """`tritonserver` on `repo`, gRPC on host:port; a context manager. `kill()` and `start()` again
    (same port) make a real outage."""

    def __init__(self, repo: str | Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.repo = Path(repo).resolve()
        self.host, self.port = host, port or free_port(host)
        self.home = pytriton_home()
        self.work = Path(tempfile.mkdtemp(prefix="edge-triton-"))
        self.backends = self._backends()
        self.log = self.work / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"

    def _backends(self) -> Path:
        server = self.home / "pytriton" / "tritonserver"
        python = self.work / "backends" / "python"
        python.mkdir(parents=True)
        for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
            shutil.copy(server / "backends" / "python" / f, python / f)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = server / "python_backend_stubs" / version / "triton_python_backend_stub"
        shutil.copy(stub, python / stub.name)
        ort = self.work / "backends" / "onnxruntime"
        ort.mkdir()
        shutil.copy(HERE / "triton_backend" / "model.py", ort / "model.py")
        return self.work / "backends"

    def start(self, timeout: float = 60.0) -> TritonServer:
        env = dict(os.environ)
        libs = str(self.home / "nvidia_pytriton.libs")
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (libs, env.get("LD_LIBRARY_PATH")) if p)
        # The Python backend's stub takes its packages from the first python on PATH: this one.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        cmd = [
            str(self.home / "pytriton" / "tritonserver" / "bin" / "tritonserver"),
            f"--model-repository={self.repo}",
            f"--backend-directory={self.backends}",
            f"--grpc-address={self.host}", f"--grpc-port={self.port}",
            "--allow-http=false", "--allow-metrics=false",
            "--exit-timeout-secs=3", "--log-verbose=0",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited {self.proc.returncode}:\n{self.tail()}")
            if self.ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"tritonserver not ready after {timeout:.0f} s:\n{self.tail()}")

    def ready(self) -> bool:
        import tritonclient.grpc as grpcclient

        with contextlib.suppress(Exception), grpcclient.InferenceServerClient(self.url) as c:
            return bool(c.is_server_ready(client_timeout=1.0))
        return False

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-request, as a crashed or unplugged one does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> TritonServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--fetch"]:  # CI: fetch the wheel once, before the tests
        print(f"tritonserver: {pytriton_home() / 'pytriton' / 'tritonserver' / 'bin'}")
        return 0
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("repo", type=Path, help="model repository (edge export MODEL --triton REPO)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8001, help="gRPC port (default 8001; 0: a free one)")
    a = p.parse_args(argv)
    if not (a.repo / ".").is_dir():
        p.error(f"{a.repo}: no such folder (write one with `edge export MODEL --triton {a.repo}`)")
    with TritonServer(a.repo, a.port, a.host) as server:
        print(
            f"triton://{server.url}: serving {a.repo} (log: {server.log})",
            file=sys.stderr,
            flush=True,
        )
        if command:  # run it against the server, then stop the server
            return subprocess.run(command).returncode
        try:
            server.proc.wait()  # type: ignore[union-attr]
        except KeyboardInterrupt:
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
