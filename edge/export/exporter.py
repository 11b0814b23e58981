"""`export_model`: a `.keras` detector -> verified ONNX files (fp32, fp16, int8) with their contract.

Every file is checked before any work, written under a temporary name beside its target and
renamed into place with the others only once all of them passed verification (an `OutputGroup`),
so a failure leaves no output behind and no old file overwritten.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, ModelError
from edge.export import (
    convert,
    hub_preset,
    images,
    metadata,
    quantize,
    trt,
    uint8_input,
    verify,
)
from edge.export.export_options import TOLERANCES, ExportOptions, Tolerance
from edge.outputs.files import check_nonempty, make_folders, remove_folders
from edge.outputs.group import OutputGroup
from edge.runtime.contract import ModelContract
from edge.runtime.postprocess import needs_nms

log = logging.getLogger(__name__)

FLAG = "--output"


@dataclass(frozen=True, eq=False)
class VariantReport:
    """One written file: its precision, size, CPU latency, parity with Keras and mAP."""

    precision: str
    path: Path
    size_bytes: int
    latency_ms: float | None
    tolerance: Tolerance
    parity: verify.Parity | None = None
    metrics: Any = None  # edge.evaluation.EvalResult, with a dataset


@dataclass(frozen=True, eq=False)
class ExportResult:
    """What `export_model` wrote and measured."""

    source: Path
    contract: ModelContract
    input_shape: tuple[int | str, ...]
    anchors: int
    converter: str
    opset: int
    images: str
    verified: bool
    variants: tuple[VariantReport, ...]
    keras_metrics: Any = None
    trt: str | None = None
    seconds: float = 0.0
    input: str = "float32"  # what the files take: uint8 (pre-processing in the graph) or float32


def output_paths(output: Path, precisions: Sequence[str]) -> list[Path]:
    """The first precision goes to `output`, each further one to `<stem>_<precision>.onnx`."""
    return [output] + [
        output.with_name(f"{output.stem}_{p}{output.suffix}") for p in precisions[1:]
    ]


def export_model(
    model: str | Path,
    output: str | Path,
    options: ExportOptions | None = None,
    group: OutputGroup | None = None,
) -> ExportResult:
    """Convert, verify and write a detector; see `ExportOptions` for the choices. With `group`,
    the files are staged there and appear with its other files at its `commit` (the caller's).

    Raises:
        ValueError: a bad argument (not a .keras/.onnx path, an input size the model cannot take).
        ModelError: the file is missing, not a Keras model, or not an edge detector.
        DataError: `calib_data` is missing, malformed or holds no image.
        VerificationError: an exported file disagrees with Keras beyond its tolerance.
        EdgeError: Keras is not on TensorFlow; TensorRT is absent with `trt_cache` and `strict`.
    """
    started = time.perf_counter()
    options = options or ExportOptions()
    source = convert.check_keras_file(model)
    targets = output_paths(_check_output(Path(output)), options.precisions)
    # Every variant's file is checked before any work and they appear together, or none does.
    group, own = _group(group, targets, [source, options.calib_data])
    image_source = images.open_source(options.calib_data)  # bad data fails before TF loads
    trt_state = _check_tensorrt(options)
    if hub_preset.is_hub_archive(convert.archive_config(source)):  # edge train --init PRESET
        loaded = hub_preset.load_archive(source, options.imgsz)
    else:
        loaded = convert.load_inference_model(source, options.imgsz)
    provenance = {**metadata.training_info(source), "edge.source": source.name}
    return _export(
        loaded, source, targets, image_source, trt_state, options, provenance, started, group, own
    )


def export_preset(
    preset: str | Path,
    output: str | Path,
    options: ExportOptions | None = None,
    group: OutputGroup | None = None,
) -> ExportResult:
    """Convert, verify and write a KerasHub object-detector preset (a local preset folder, or a
    preset name KerasHub downloads once), as `export_model` does a `.keras` detector (`group`
    as there).

    Raises as `export_model` does; ModelError also for a folder that is not a KerasHub preset,
    a preset that is not an object detector edge exports, or a name that cannot be downloaded.
    """
    started = time.perf_counter()
    options = options or ExportOptions()
    found = hub_preset.check_preset(preset)
    targets = output_paths(_check_output(Path(output)), options.precisions)
    group, own = _group(group, targets, [found.folder, options.calib_data])
    image_source = images.open_source(options.calib_data)
    trt_state = _check_tensorrt(options)
    loaded = hub_preset.load_preset(found, options.imgsz)
    provenance = {"edge.source": found.name}
    return _export(
        loaded, Path(found.name), targets, image_source, trt_state, options, provenance, started,
        group, own,
    )  # fmt: skip


def _group(
    group: OutputGroup | None, targets: list[Path], inputs: list[Path | None]
) -> tuple[OutputGroup, bool]:
    """The caller's group, or one of our own for the variants' files (checked now, before any
    work); True when it is ours to commit."""
    if group is not None:
        return group, False
    return OutputGroup([(FLAG, t) for t in targets], inputs, parents=(FLAG,)), True


def _export(
    loaded: convert.InferenceModel,
    source: Path,
    targets: list[Path],
    image_source: images.ImageSource,
    trt_state: tuple[bool, str] | None,
    options: ExportOptions,
    provenance: dict[str, str],
    started: float,
    group: OutputGroup,
    own: bool,
) -> ExportResult:
    """The conversion, checks and files of both exports; `own`: this call commits `group`."""
    opset = options.opset or loaded.opset
    outputs = convert.output_names(loaded.contract)
    base = convert.to_onnx(loaded.model, options.dynamic_batch, opset, outputs)
    log.info("converted %s with %s, opset %d", source.name, convert.converter_name(), opset)
    pictures = images.export_images(
        image_source, options.calib_images, loaded.contract, options.eval_images, options.seed
    )
    reference = (
        verify.keras_outputs(loaded.model, pictures.tensors, loaded.contract)
        if options.verify
        else None
    )
    keras_metrics = _keras_map(loaded, pictures) if options.verify else None
    provenance = {**provenance, "edge.converter": f"{convert.converter_name()}, opset {opset}"}
    # The group inside: its temporaries go before the folders the scratch one created.
    with _staging(targets[0].parent) as scratch, group if own else contextlib.nullcontext():
        reports = [
            _variant(p, t, base, loaded, pictures, reference, group, scratch, options, provenance)
            for p, t in zip(options.precisions, targets, strict=True)
        ]
        if own:
            group.commit()
    h, w = loaded.contract.imgsz
    return ExportResult(
        source=source,
        contract=loaded.contract,
        input_shape=("batch" if options.dynamic_batch else 1, h, w, 3),
        anchors=int(base.graph.output[0].type.tensor_type.shape.dim[1].dim_value),
        converter=convert.converter_name(),
        opset=opset,
        images=pictures.description,
        verified=options.verify,
        variants=tuple(reports),
        keras_metrics=keras_metrics,
        trt=_tensorrt_caches(trt_state, reports, options),
        seconds=time.perf_counter() - started,
        input=options.input,
    )


def _check_output(output: Path) -> Path:
    if output.suffix.lower() != ".onnx":
        raise ValueError(f"-o/--output must end in .onnx, got {output.name!r}")
    if output.is_dir():
        raise ValueError(f"-o/--output {output} is a folder; name a .onnx file")
    return output


def _variant(
    precision: str,
    target: Path,
    base: Any,
    loaded: convert.InferenceModel,
    pictures: images.ExportImages,
    reference: verify.Outputs | None,
    group: OutputGroup,
    scratch: Path,
    options: ExportOptions,
    provenance: dict[str, str],
) -> VariantReport:
    """Make one precision, write it under a temporary name of `group`, verify and measure it."""
    import onnx

    proto = _at_precision(precision, base, pictures, scratch)
    contract = metadata.export_contract(
        loaded.contract, loaded.config, provenance, precision, options.batch
    )
    if options.input == "uint8":  # after quantising: calibration runs the float graph
        proto = uint8_input.with_uint8_input(proto, contract)
        contract = uint8_input.uint8_contract(contract)
    proto = metadata.with_metadata(proto, contract)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:  # a converter's defect, not the user's input
        raise ModelError(
            f"the {precision} ONNX graph edge made is not valid ONNX ({convert.one_line(str(exc))}); "
            "nothing was written: please report it with the model"
        ) from None
    staged = group.stage(target, FLAG, check_nonempty)
    onnx.save(proto, str(staged))
    tolerance = TOLERANCES[precision]
    report = VariantReport(precision, target, staged.stat().st_size, None, tolerance)
    session = _session(staged, precision, options.verify)
    if session is None:
        return report
    parity = None
    if reference is not None:
        fed = pictures.inputs_for(contract)
        got = verify.onnx_outputs(session, fed, options.dynamic_batch, contract)
        if not needs_nms(contract):  # its rows are a set of detections: compared as one
            got = verify.in_reference_order(reference, got)
        parity = verify.compare(reference, got, needs_nms(contract))
        failures = parity.failures(tolerance, contract.imgsz)
        if failures:
            raise verify.VerificationError(
                f"the {precision} ONNX model disagrees with Keras: {'; '.join(failures)}; "
                "nothing was written"
            )
        log.debug("%s parity: %s", precision, parity)
    metrics = None
    if _can_map(contract, pictures):
        metrics = verify.onnx_map(session, pictures.eval_samples, pictures.names)
    first = pictures.inputs_for(contract)[0]
    latency = verify.median_latency_ms(session, first, options.latency_runs)
    return VariantReport(precision, target, report.size_bytes, latency, tolerance, parity, metrics)


def _at_precision(precision: str, base: Any, pictures: images.ExportImages, scratch: Path) -> Any:
    if precision == "fp16":
        return quantize.to_fp16(base)
    if precision == "int8":
        return quantize.to_int8(base, pictures.tensors, convert.INPUT, scratch)
    return base


def _session(path: Path, precision: str, verifying: bool) -> Any:
    """The file opened by the runtime's loader on the CPU; None when it cannot run there and
    verification is off (an fp16 file on an ONNX Runtime without CPU kernels for it)."""
    from edge.runtime.session import ModelSession, SessionOptions

    try:
        return ModelSession(path, SessionOptions(device="cpu", warmup=0))
    except ModelError as exc:
        if verifying:
            raise verify.VerificationError(
                f"the {precision} model does not run on ONNX Runtime's CPU here, so it cannot be "
                f"verified ({exc}); {precision} targets GPUs: --no-verify writes it unverified"
            ) from None
        log.warning("%s: not runnable on the CPU here (%s); latency not measured", precision, exc)
        return None


def _can_map(contract: ModelContract, pictures: images.ExportImages) -> bool:
    if not pictures.eval_samples:
        return False
    if len(pictures.names) != contract.num_classes:
        log.warning(
            "no mAP: the dataset has %d classes, the model %d",
            len(pictures.names),
            contract.num_classes,
        )
        return False
    return True


def _keras_map(loaded: convert.InferenceModel, pictures: images.ExportImages) -> Any:
    if not _can_map(loaded.contract, pictures):
        return None
    return verify.keras_map(loaded.model, pictures.eval_samples, pictures.names, loaded.contract)


@contextlib.contextmanager
def _staging(folder: Path) -> Iterator[Path]:
    """A hidden scratch folder inside `folder` (created if needed; int8 calibration writes its
    files there), removed on the way out; on failure the folders this created are removed too."""
    created = make_folders(folder)
    stage = Path(tempfile.mkdtemp(prefix=".edge-export-", suffix=".partial", dir=folder))
    ok = False
    try:
        yield stage
        ok = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not ok:
            remove_folders(created)


def _check_tensorrt(options: ExportOptions) -> tuple[bool, str] | None:
    """Whether TensorRT runs here, asked before converting so `strict` fails fast."""
    if options.trt_cache is None:
        return None
    available, providers = trt.tensorrt_available()
    if not available and options.strict:
        raise EdgeError(
            f"--trt-cache: TensorRT is not available here (ONNX Runtime runs {providers}); "
            "drop --strict to export without an engine cache"
        )
    return available, providers


def _tensorrt_caches(
    state: tuple[bool, str] | None, reports: Sequence[VariantReport], options: ExportOptions
) -> str | None:
    if state is None or options.trt_cache is None:
        return None
    available, providers = state
    if not available:
        msg = f"TensorRT is not available here (ONNX Runtime runs {providers}); no engine cache"
        log.warning("--trt-cache skipped: %s", msg)
        return msg
    built = []
    for report in reports:
        seconds = trt.build_cache(report.path, options.trt_cache, options.trt_fp16)
        built.append(f"{report.path.name} {seconds:.1f} s")
    return f"TensorRT engines cached in {options.trt_cache}: {', '.join(built)}"
