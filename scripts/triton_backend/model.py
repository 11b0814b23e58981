"""ONNX Runtime as a Python-based Triton backend, for the loopback test server.

The `nvidia-pytriton` wheel ships a real `tritonserver` with only its Python backend; Triton's C++
onnxruntime backend comes in NVIDIA's containers. Installed as `<backends>/onnxruntime/model.py`
(Triton's "Python-based backends"), this runs a model repository written by `edge export --triton`
unchanged (`backend: "onnxruntime"`): the server does the protocol, queueing, dynamic batching and
instances, and each instance runs the repository's `model.onnx` in an ONNX Runtime session.
GPU accelerator settings in the config are for the real backend and are ignored here (CPU only).
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        name = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], name)
        options = ort.SessionOptions()
        threads = config.get("parameters", {}).get("intra_op_thread_count", {})
        if threads.get("string_value"):
            options.intra_op_num_threads = int(threads["string_value"])
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        first = self.session.get_inputs()[0].shape[0]
        # A model exported with batch 1 behind a batching config runs one row at a time.
        self.rows = first if isinstance(first, int) and first > 0 else None
        self.batching = config.get("max_batch_size", 0) > 0

    def _run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        n = len(next(iter(feed.values())))
        if self.rows is None or n == self.rows:
            return self.session.run(self.outputs, feed)
        parts = [
            self.session.run(self.outputs, {k: v[i : i + 1] for k, v in feed.items()})
            for i in range(n)
        ]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(self.outputs))]

    def execute(self, requests: list) -> list:
        # DLPack both ways: the stub's numpy bridge (built against numpy 1) garbles numpy 2 arrays.
        feeds = [
            {k: np.from_dlpack(pb_utils.get_input_tensor_by_name(r, k)) for k in self.inputs}
            for r in requests
        ]
        if not self.batching:
            return [self._respond([f])[0] for f in feeds]
        return self._respond(feeds)

    def _respond(self, feeds: list[dict[str, np.ndarray]]) -> list:
        """Run the requests' rows as one batch (what Triton's own backend does) and split it."""
        try:
            outs = self._run({k: np.concatenate([f[k] for f in feeds]) for k in self.inputs})
        except Exception as exc:  # the server answers each request with the error
            error = pb_utils.TritonError(f"onnxruntime: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in feeds]
        responses, start = [], 0
        for f in feeds:
            n = len(f[self.inputs[0]])
            tensors = [
                pb_utils.Tensor.from_dlpack(k, np.ascontiguousarray(v[start : start + n]))
                for k, v in zip(self.outputs, outs, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses
