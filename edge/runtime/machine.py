"""What this machine offers: its CPU, its GPUs and the ONNX Runtime providers that really start.

`edge info` prints it and `edge bench` records it beside every number, so no number is quoted
without the hardware it was measured on.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path


def provider_check() -> dict[str, str]:
    """For each compiled-in provider: 'starts' if a session really runs on it, else why not."""
    import onnxruntime as ort

    from edge.runtime.providers import probe

    result = {}
    for name in ort.get_available_providers():
        state = probe(name)
        result[name] = "starts" if state.starts else f"does not start ({state.reason})"
    return result


def gpus() -> list[str]:
    """The GPUs `nvidia-smi -L` lists; empty without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def machine_info() -> dict[str, str]:
    """CPU model, core count, GPUs: where the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count() or 0),
        "gpus": "; ".join(gpus()) or "none",
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
    }


def usable_cores() -> int:
    """Logical CPUs this process may run on (its affinity, e.g. under `taskset` or a container)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def physical_cores() -> int:
    """The cores among them, the hyper-threads of one core counted once: as many intra-op
    threads as ONNX Runtime starts by default."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cpus:
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text(), (topo / "core_id").read_text()))
        except OSError:
            cores.add((str(cpu), ""))
    return len(cores)
