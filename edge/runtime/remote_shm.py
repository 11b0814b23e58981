"""System shared memory for a Triton server on this host: tensors skip the gRPC message.

One slot per request in flight: an input region and, when every output's size is known from the
model's metadata, an output region the server writes into. Regions are POSIX shared memory
(`tritonclient.utils.shared_memory`), registered with the server under names unique to this
process, registered again after the server restarts, and removed on `close()`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_ids = itertools.count()
_DTYPES = {
    "UINT8": np.uint8,
    "FP32": np.float32,
    "FP16": np.float16,
    "INT64": np.int64,
    "INT32": np.int32,
}


class _Slot:
    def __init__(self, name: str, size: int) -> None:
        import tritonclient.utils.shared_memory as shm

        self.name, self.key, self.size = name, f"/{name}", size
        self.handle = shm.create_shared_memory_region(name, self.key, size)

    def destroy(self) -> None:
        import tritonclient.utils.shared_memory as shm

        with contextlib.suppress(Exception):
            shm.destroy_shared_memory_region(self.handle)


class SharedMemory:
    """Input (and output) regions per request slot; see the module docstring."""

    def __init__(self, client: Any, metadata: dict, max_batch: int | None) -> None:
        self.client = client
        self.prefix = f"edge_{os.getpid()}_{next(_ids)}"
        self.outputs_meta = [
            (o["name"], [int(d) for d in o["shape"]], _DTYPES.get(o["datatype"]))
            for o in metadata.get("outputs", [])
        ]
        # Output regions need every size up front: none for outputs with a dynamic dimension.
        fixed = all(
            dtype is not None and all(d > 0 for d in (shape[1:] if max_batch else shape))
            for _, shape, dtype in self.outputs_meta
        )
        self.has_outputs = fixed
        self._inputs: dict[int, _Slot] = {}
        self._outputs: dict[int, tuple[_Slot, list[tuple[str, int, tuple[int, ...], Any]]]] = {}
        self._batch: dict[int, int] = {}

    def _region(self, slots: dict, i: int, kind: str, size: int) -> _Slot:
        slot = slots.get(i)
        slot = slot[0] if isinstance(slot, tuple) else slot
        if slot is not None and slot.size >= size:
            return slot
        if slot is not None:
            self._unregister(slot)
            slot.destroy()
        slot = _Slot(f"{self.prefix}_{kind}{i}_{next(_ids)}", size)  # a new key: no reuse
        self.client.register_system_shared_memory(slot.name, slot.key, slot.size)
        return slot

    def bind(self, i: int, inp: Any, x: np.ndarray, grpcclient: Any) -> list[Any] | None:
        """Put `x` in slot i's input region and point `inp` (and the outputs) at the regions."""
        import tritonclient.utils.shared_memory as shm

        x = np.ascontiguousarray(x)
        slot = self._region(self._inputs, i, "in", x.nbytes)
        self._inputs[i] = slot
        shm.set_shared_memory_region(slot.handle, [x])
        inp.set_shared_memory(slot.name, x.nbytes)
        if not self.has_outputs:
            return None
        n = len(x)
        layout, offset = [], 0
        for name, shape, dtype in self.outputs_meta:
            dims = (n, *shape[1:]) if shape and shape[0] < 0 else tuple(shape)
            size = int(np.prod(dims)) * np.dtype(dtype).itemsize
            layout.append((name, offset, dims, dtype))
            offset += size
        out_slot = self._region(self._outputs, i, "out", offset)
        self._outputs[i] = (out_slot, layout)
        requested = []
        for name, off, dims, dtype in layout:
            o = grpcclient.InferRequestedOutput(name)
            o.set_shared_memory(
                out_slot.name, int(np.prod(dims)) * np.dtype(dtype).itemsize, offset=off
            )
            requested.append(o)
        return requested

    def outputs(self, i: int, _result: Any) -> list[np.ndarray]:
        import tritonclient.utils.shared_memory as shm

        slot, layout = self._outputs[i]
        return [
            np.array(
                shm.get_contents_as_numpy(slot.handle, dtype, list(dims), offset=off), copy=True
            )
            for _, off, dims, dtype in layout
        ]

    def _slots(self) -> list[_Slot]:
        return [*self._inputs.values(), *(s for s, _ in self._outputs.values())]

    def register(self) -> None:
        """After a server restart: register every region again."""
        for slot in self._slots():
            self._unregister(slot)
            with contextlib.suppress(Exception):
                self.client.register_system_shared_memory(slot.name, slot.key, slot.size)

    def _unregister(self, slot: _Slot) -> None:
        with contextlib.suppress(Exception):
            self.client.unregister_system_shared_memory(slot.name)

    def close(self) -> None:
        for slot in self._slots():
            self._unregister(slot)
            slot.destroy()
        self._inputs.clear()
        self._outputs.clear()
