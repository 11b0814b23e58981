"""A Triton Inference Server model repository for an exported detector: `REPO/NAME/1/model.onnx`
and `REPO/NAME/config.pbtxt`.

The config is built with Triton's own protobuf definitions (`tritonclient.grpc.model_config_pb2`)
from the ONNX file: inputs and outputs with their types and sizes, dynamic batching (preferred
sizes and a queue delay) when the batch dimension is dynamic, an instance group, TensorRT with
fp16 as the GPU accelerator of Triton's ONNX Runtime backend (with an optimisation profile over
the batch sizes, so no engine is rebuilt per size), and the model's contract: its ONNX metadata
as the `edge.metadata` parameter, which `--device triton://` reads back from the server so a
client needs no model file of its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ModelError, check_regular
from edge.outputs.files import OutputError, check_folder, fsync_file, fsync_folder, os_error
from edge.outputs.group import OutputGroup
from edge.runtime.contract import from_metadata
from edge.runtime.remote import CONTRACT_KEY

log = logging.getLogger(__name__)

KINDS = ("auto", "gpu", "cpu")
MAX_BATCH = 64
_ONNX_TYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 10: "TYPE_FP16", 7: "TYPE_INT64", 6: "TYPE_INT32"}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class TritonOptions:
    """What the config asks of the server. `max_batch`: the largest batch the dynamic batcher
    forms (models with a dynamic batch dimension; 0 for a fixed batch); `delay_us`: how long a
    request may wait for others to join its batch; `instances` model copies of `kind` (auto: on
    the GPUs when the server has any, else the CPU); `trt_fp16`: TensorRT builds fp16 engines."""

    name: str | None = None
    max_batch: int = 8
    delay_us: int = 2000
    instances: int = 1
    kind: str = "auto"
    trt_fp16: bool = True

    def __post_init__(self) -> None:
        if self.name is not None and not _NAME.match(self.name):
            raise ValueError(
                f"--triton-name {self.name!r}: use letters, digits, '_', '-' and '.' only"
            )
        if not 1 <= self.max_batch <= MAX_BATCH:
            raise ValueError(f"--triton-max-batch must be 1..{MAX_BATCH}, got {self.max_batch}")
        if not 0 <= self.delay_us <= 1_000_000:
            raise ValueError(f"--triton-delay-us must be 0..1000000, got {self.delay_us}")
        if not 1 <= self.instances <= 64:
            raise ValueError(f"--triton-instances must be 1..64, got {self.instances}")
        if self.kind not in KINDS:
            raise ValueError(f"--triton-kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


def _dims(value_info: object) -> list[int]:
    """ONNX dims as Triton writes them: -1 for a dynamic one."""
    dims = value_info.type.tensor_type.shape.dim  # type: ignore[attr-defined]
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims]


def _tensor(value_info: object, source: str) -> tuple[str, str, list[int]]:
    elem = value_info.type.tensor_type.elem_type  # type: ignore[attr-defined]
    if elem not in _ONNX_TYPES:
        raise ModelError(
            f"{source}: {value_info.name!r} has ONNX element type {elem}, which this export does not map"
        )  # type: ignore[attr-defined]
    return value_info.name, _ONNX_TYPES[elem], _dims(value_info)  # type: ignore[attr-defined]


def model_config(onnx_path: Path, options: TritonOptions) -> tuple[str, Any]:
    """(text of config.pbtxt, the ModelConfig message) for `onnx_path`."""
    import onnx
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    source = f"model {onnx_path}"
    check_regular(onnx_path, source, ModelError)
    model = onnx.load(str(onnx_path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    contract = from_metadata(meta, source=source)  # refuses what no client could decode
    init = {i.name for i in model.graph.initializer}
    inputs = [_tensor(i, source) for i in model.graph.input if i.name not in init]
    outputs = [_tensor(o, source) for o in model.graph.output]
    if len(inputs) != 1:
        raise ModelError(f"{source}: expected one image input, found {len(inputs)}")
    batching = all(dims and dims[0] == -1 for _, _, dims in inputs + outputs)
    name = options.name or onnx_path.stem
    if not _NAME.match(name):
        raise ValueError(f"--triton-name: {name!r} is not a model name Triton takes; give one")
    c = mc.ModelConfig(name=name, backend="onnxruntime", default_model_filename="model.onnx")
    c.max_batch_size = options.max_batch if batching else 0
    if not batching:
        log.warning(
            "%s: the batch dimension is fixed: the server cannot batch requests "
            "(export from .keras with --triton, which makes it dynamic)",
            source,
        )
    for (n, t, dims), add in [(x, c.input.add) for x in inputs] + [
        (x, c.output.add) for x in outputs
    ]:
        add(name=n, data_type=getattr(mc, t), dims=dims[1:] if batching else dims)
    if batching and options.max_batch > 1:
        b = options.max_batch
        c.dynamic_batching.preferred_batch_size.extend(sorted({max(1, b // 2), b}))
        c.dynamic_batching.max_queue_delay_microseconds = options.delay_us
    kind = {"auto": "KIND_AUTO", "gpu": "KIND_GPU", "cpu": "KIND_CPU"}[options.kind]
    c.instance_group.add(kind=getattr(mc.ModelInstanceGroup, kind), count=options.instances)
    if options.kind != "cpu":
        trt = c.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        trt.parameters["precision_mode"] = "FP16" if options.trt_fp16 else "FP32"
        trt.parameters["max_workspace_size_bytes"] = str(1 << 30)
        n, _, dims = inputs[0]
        if batching and all(d > 0 for d in dims[1:]):
            shape = "x".join(str(d) for d in dims[1:])
            for key, batch in (("min", 1), ("opt", options.max_batch), ("max", options.max_batch)):
                trt.parameters[f"trt_profile_{key}_shapes"] = f"{n}:{batch}x{shape}"
    c.parameters[CONTRACT_KEY].string_value = json.dumps(meta, sort_keys=True)
    header = (
        f"# Written by `edge export --triton` for {onnx_path.name}: {len(contract.names)} classes, "
        f"input {inputs[0][0]} {inputs[0][2]}.\n"
        "# instance_group kind KIND_AUTO (the default, so not written) puts the instances on the\n"
        "# server's GPUs when it has any, else on its CPU; the tensorrt accelerator applies on GPUs.\n"
        f"# Parameter {CONTRACT_KEY}: the model's contract, read by `edge run --device triton://`.\n"
    )
    return header + text_format.MessageToString(c), c


def write_repository(
    onnx_path: Path, repo: Path, options: TritonOptions, group: OutputGroup | None = None
) -> tuple[Path, Any]:
    """Write `repo/NAME/` (config.pbtxt, 1/model.onnx) for `onnx_path`; return that folder and
    the config (a ModelConfig message).

    Built in a hidden sibling and renamed into place when complete; an existing `NAME/` is
    replaced only then, so an interrupted export leaves the old one as it was. With `group`, the
    folder is staged there and appears with the group's other files, at its `commit`.
    """
    onnx_path, repo = Path(onnx_path), Path(repo)
    check_folder("--triton", repo)
    text, config = model_config(onnx_path, options)
    final = repo / config.name  # type: ignore[attr-defined]
    if final.exists() and Path(os.path.realpath(onnx_path)).is_relative_to(os.path.realpath(final)):
        raise OutputError(
            f"--triton {repo}: {onnx_path} is inside {final}, which the export replaces; "
            "export from a copy, or give --triton-name another name"
        )
    with contextlib.nullcontext(group) if group else OutputGroup([]) as staging:
        tmp = staging.stage(final, "--triton", folder=True)
        try:
            (tmp / "1").mkdir()
            shutil.copyfile(onnx_path, tmp / "1" / "model.onnx")
            (tmp / "config.pbtxt").write_text(text, encoding="utf-8")
            for f in (tmp / "1" / "model.onnx", tmp / "config.pbtxt"):
                fsync_file(f)
            fsync_folder(tmp / "1")
        except OSError as exc:
            raise os_error("--triton", final, exc) from None
        if group is None:
            staging.commit()
    return final, config


def describe(config: Any) -> str:
    """One line on what the config asks of the server."""
    from tritonclient.grpc import model_config_pb2 as mc

    parts = [f"model {config.name}, max_batch_size {config.max_batch_size}"]
    if config.HasField("dynamic_batching"):
        b = config.dynamic_batching
        parts.append(
            f"dynamic batching (preferred {list(b.preferred_batch_size)}, queue delay "
            f"{b.max_queue_delay_microseconds} us)"
        )
    else:
        parts.append("no batching (the model's batch is fixed)")
    for g in config.instance_group:
        parts.append(f"{g.count} instance(s) {mc.ModelInstanceGroup.Kind.Name(g.kind)}")
    for acc in config.optimization.execution_accelerators.gpu_execution_accelerator:
        parts.append(
            f"{acc.name} {acc.parameters.get('precision_mode', '')} on GPUs".replace("  ", " ")
        )
    return ", ".join(parts)
