"""`edge export ... --triton REPO`: the model repository, its config.pbtxt read back with Triton's
own protobuf definitions (tritonclient's model_config_pb2). Loading it in a real server is in
tests/test_triton.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from batch_models import batch_detector
from google.protobuf import text_format
from onnx_models import fixed_detector
from tritonclient.grpc import model_config_pb2 as mc

from edge.export.triton_repo import TritonOptions, write_repository
from edge.runtime.remote import CONTRACT_KEY


def edge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def parse(folder: Path) -> mc.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), mc.ModelConfig())


def test_a_dynamic_batch_model_gets_dynamic_batching_and_tensorrt_fp16(tmp_path: Path) -> None:
    model = batch_detector(tmp_path / "tiny.onnx", names=("a", "b", "c"), imgsz=(64, 48))
    folder, _ = write_repository(model, tmp_path / "repo", TritonOptions(delay_us=500))
    assert folder == tmp_path / "repo" / "tiny"
    assert (folder / "1" / "model.onnx").read_bytes() == model.read_bytes()
    c = parse(folder)
    assert (c.name, c.backend, c.max_batch_size, c.default_model_filename) == (
        "tiny", "onnxruntime", 8, "model.onnx",
    )  # fmt: skip
    (i,) = c.input
    assert (i.name, i.data_type, list(i.dims)) == ("images", mc.TYPE_FP32, [64, 48, 3])
    assert [(o.name, o.data_type, list(o.dims)) for o in c.output] == [
        ("boxes", mc.TYPE_FP32, [2, 4]),
        ("scores", mc.TYPE_FP32, [2, 3]),
    ]
    assert list(c.dynamic_batching.preferred_batch_size) == [4, 8]
    assert c.dynamic_batching.max_queue_delay_microseconds == 500
    (g,) = c.instance_group
    assert (g.kind, g.count) == (mc.ModelInstanceGroup.KIND_AUTO, 1)
    (trt,) = c.optimization.execution_accelerators.gpu_execution_accelerator
    assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
    assert trt.parameters["trt_profile_min_shapes"] == "images:1x64x48x3"
    assert trt.parameters["trt_profile_max_shapes"] == "images:8x64x48x3"
    # The contract travels in the config: the model's own ONNX metadata, as it is.
    meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    assert json.loads(c.parameters[CONTRACT_KEY].string_value) == meta


@pytest.mark.parametrize(
    ("options", "kind", "accelerators", "precision"),
    [
        (TritonOptions(kind="gpu", instances=2, trt_fp16=False), "KIND_GPU", 1, "FP32"),
        (TritonOptions(kind="cpu"), "KIND_CPU", 0, None),
    ],
)
def test_instances_and_accelerator_follow_the_options(
    tmp_path: Path, options: TritonOptions, kind: str, accelerators: int, precision: str | None
) -> None:
    model = batch_detector(tmp_path / "tiny.onnx")
    c = parse(write_repository(model, tmp_path / "repo", options)[0])
    assert mc.ModelInstanceGroup.Kind.Name(c.instance_group[0].kind) == kind
    assert c.instance_group[0].count == options.instances
    accs = c.optimization.execution_accelerators.gpu_execution_accelerator
    assert len(accs) == accelerators
    if precision:
        assert accs[0].parameters["precision_mode"] == precision


def test_a_fixed_batch_model_is_served_without_batching(tmp_path: Path) -> None:
    model = fixed_detector(tmp_path / "fixed.onnx")
    c = parse(write_repository(model, tmp_path / "repo", TritonOptions())[0])
    assert c.max_batch_size == 0 and not c.HasField("dynamic_batching")
    assert list(c.input[0].dims)[0] == 1  # the batch dimension is part of the dims then


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"max_batch": 0}, "--triton-max-batch"),
        ({"max_batch": 65}, "--triton-max-batch"),
        ({"delay_us": -1}, "--triton-delay-us"),
        ({"instances": 0}, "--triton-instances"),
        ({"kind": "tpu"}, "--triton-kind"),
        ({"name": "a b"}, "--triton-name"),
        ({"name": "../x"}, "--triton-name"),
    ],
)
def test_bad_options_name_their_flag(kwargs: dict, flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        TritonOptions(**kwargs)


def test_cli_writes_replaces_and_refuses(tmp_path: Path) -> None:
    model = batch_detector(tmp_path / "tiny.onnx")
    repo = tmp_path / "repo"
    r = edge("export", str(model), "--triton", str(repo), "--triton-name", "cams")
    assert r.returncode == 0, r.stderr
    assert f"wrote {repo / 'cams'}" in r.stdout and "dynamic batching" in r.stdout
    first = (repo / "cams" / "config.pbtxt").read_text()
    r = edge("export", str(model), "--triton", str(repo), "--triton-name", "cams",
             "--triton-max-batch", "4")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (
        parse(repo / "cams").max_batch_size
        == 4
        != text_format.Parse(first, mc.ModelConfig()).max_batch_size
    )
    assert sorted(p.name for p in repo.iterdir()) == ["cams"]  # no hidden leftovers
    # The repository's own file as the input: replacing the folder would destroy it.
    inside = repo / "cams" / "1" / "model.onnx"
    r = edge("export", str(inside), "--triton", str(repo), "--triton-name", "cams")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "inside" in r.stderr and inside.is_file()


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["{plain}", "--triton", "{repo}"], "no detector metadata"),
        (["{tiny}"], "--triton REPO"),
        (["{tiny}", "--triton", "{tiny}"], "not a folder"),
        (["{tiny}", "--triton", "{repo}", "--triton-max-batch", "0"], "--triton-max-batch"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], expect: str) -> None:
    tiny = batch_detector(tmp_path / "tiny.onnx")
    plain = tmp_path / "plain.onnx"
    m = onnx.load(str(tiny))
    del m.metadata_props[:]
    onnx.save(m, str(plain))
    names = {"tiny": str(tiny), "plain": str(plain), "repo": str(tmp_path / "repo")}
    r = edge("export", *[a.format(**names) for a in args])
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and expect in r.stderr, r.stderr
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_export_with_output_and_triton_writes_both_or_neither(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # The repository's model folder is a file: found only after the conversion, when the folder
    # is staged. The ONNX file was written already; now neither is (one line, exit 2).
    pytest.importorskip("keras")
    from test_export import tiny_detector_file

    keras_model = tiny_detector_file(tmp_path_factory)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "m").write_text("not a folder")
    out = tmp_path / "m.onnx"
    args = ["export", str(keras_model), "-o", str(out), "--triton", str(tmp_path / "repo"),
            "--no-verify", "--runs", "1", "--triton-kind", "cpu"]  # fmt: skip
    r = edge(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"edge export: error: --triton {tmp_path / 'repo' / 'm'}: is a file, not a folder; "
        "give a folder name"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]
    assert [p.name for p in (tmp_path / "repo").iterdir()] == ["m"]
    (tmp_path / "repo" / "m").unlink()
    r = edge(*args)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and (tmp_path / "repo" / "m" / "1" / "model.onnx").read_bytes() == (
        out.read_bytes()
    )
    assert parse(tmp_path / "repo" / "m").name == "m"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "repo"]
