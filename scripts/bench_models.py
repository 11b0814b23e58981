"""CPU latency of detector families side by side, at several input sizes, in one interleaved run.

    python scripts/bench_models.py --work .bench_models --sizes 320,640 --rounds 3 \\
        --model yolov8n=yolov8n_320.onnx --model yolov8n=yolov8n_640.onnx \\
        --model yolo11n=yolo11n_320.onnx --model yolo11n=yolo11n_640.onnx

Builds, with random weights, the KerasHub detectors of issue 17 and saves each as a local preset
(`save_to_preset`) in --work: D-FINE nano-sized (HGNetV2-B0, 300 queries, strides 16 and 32: the
dfine_nano_coco configuration, 3,788,625 parameters) and RetinaNet ResNet50-FPN (P3-P7; the
retinanet_resnet50_fpn_coco configuration with 80 classes instead of its 91). Each is exported with
`edge export --preset DIR -o X.onnx --imgsz N` at every size; edge's own model is the bundled
`models/default.onnx` at its 320 and `edge export models/default.keras --imgsz N` at the others.
`--model NAME=FILE.onnx` adds any other model (an Ultralytics export as it comes): a file with a
fixed input fills its size's column, a dynamic one every column that no fixed file of that NAME
fills. Exports already in --work are reused (delete the folder to rebuild). The YOLO files of
issue 17 came from random weights in a separate venv with ultralytics (never edge's dependency):
`YOLO("yolov8n.yaml").export(format="onnx", imgsz=320)`, likewise yolo11n.yaml and imgsz=640.
D-FINE nano takes a multiple of 32 from 256 up (300 queries among its stride-16/32 anchors).

Timing is `edge bench`'s (edge.export.benchmark: the same session options, input and
`time_calls`), on the CPU provider, one frame per call. Every round times each model at each size
once, so a busy machine slows all of them alike; the table gives each case's best p50 over the
rounds and its ratio to --reference. `params`: elements of the ONNX file's initializers (the
weights the inference graph uses, plus constants an exporter baked in such as anchors) at the
smallest size: fewer than Keras's count_params where training-only or unused layers are pruned
(D-FINE nano 3.09M of 3.79M, RetinaNet R50 27.96M of 33.89M). --tiny builds
tiny stand-ins of the same families (tests/hub_presets.py) for a quick check of the script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EDGE = "edge"  # the row of edge's own model


@dataclass
class Row:
    """One model: its ONNX file per input size, and the best p50 per size once timed."""

    name: str
    files: dict[int, Path] = field(default_factory=dict)
    dynamic: Path | None = None
    best_ms: dict[int, float] = field(default_factory=dict)

    def file_for(self, size: int) -> Path | None:
        return self.files.get(size, self.dynamic)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--work", type=Path, required=True, help="folder for the presets and exports")
    p.add_argument("--sizes", default="320,640", help="input sizes, comma-separated")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best p50 of them)")
    p.add_argument("--runs", type=int, default=50, help="timed runs per case per round")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs per case per round")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: default)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=FILE.onnx")
    p.add_argument("--reference", default="yolov8n", help="the ratio column's model")
    p.add_argument("--families", default="dfine_nano,retinanet_r50,edge", help="built rows")
    p.add_argument("--tiny", action="store_true", help="tiny stand-ins of the families (tests)")
    p.add_argument("--no-verify", action="store_true", help="export without the Keras check")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    if args.rounds < 1 or args.runs < 1 or args.warmup < 0 or not sizes:
        _fail("--rounds and --runs must be >= 1, --warmup >= 0, --sizes not empty")
    extra = [_model_spec(spec) for spec in args.model]  # checked before minutes of exports
    from edge.cli.quiet import quiet_libraries

    quiet_libraries(verbose=False)  # as `edge export` does: no TensorFlow start-up lines
    rows = build_rows(args, sizes)
    for name, path in extra:
        add_model(rows, name, path)
    print(f"load average before: {_load()}", file=sys.stderr, flush=True)
    time_rows(list(rows.values()), sizes, args)
    print(f"load average after: {_load()}", file=sys.stderr, flush=True)
    print(format_table(list(rows.values()), sizes, args.reference))
    if args.json:
        args.json.write_text(json.dumps(to_dict(list(rows.values()), sizes, args), indent=2))
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _fail(text: str) -> None:
    print(f"bench_models: error: {text}", file=sys.stderr)
    raise SystemExit(2)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the models ------------------------------------------------------------------------------


def build_rows(args: argparse.Namespace, sizes: list[int]) -> dict[str, Row]:
    """The families' presets (built once) and their exports at each size, in --work."""
    families = [f for f in args.families.split(",") if f]
    unknown = set(families) - {*BUILDERS, EDGE}
    if unknown:
        _fail(
            f"--families: unknown {', '.join(sorted(unknown))}; use {', '.join([*BUILDERS, EDGE])}"
        )
    work = args.work / ("tiny" if args.tiny else "full")
    work.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Row] = {}
    for family in families:
        row = rows[family] = Row(family)
        if family == EDGE:
            source = _edge_model(args.tiny, work)
            for size in sizes:
                row.files[size] = _edge_export(source, work, size, args)
            continue
        preset = work / "presets" / family
        if not (preset / "config.json").is_file():
            _say(f"building {family} (random weights) -> {preset}")
            part = preset.with_name(preset.name + ".part")  # renamed once complete
            shutil.rmtree(part, ignore_errors=True)
            BUILDERS[family](args.tiny).save_to_preset(str(part))
            part.rename(preset)
        for size in sizes:
            out = work / f"{family}_{size}.onnx"
            _export(["--preset", str(preset)], out, size, args.no_verify)
            row.files[size] = out
    return rows


def _edge_model(tiny: bool, work: Path) -> Path:
    if not tiny:
        return REPO / "models" / "default.keras"
    path = work / "edge_tiny.keras"
    if not path.is_file():
        from edge.model import build_detector

        _say(f"building a tiny edge detector -> {path}")
        build_detector(("a", "b", "c"), imgsz=64, backbone="tiny").save(path)
    return path


def _edge_export(source: Path, work: Path, size: int, args: argparse.Namespace) -> Path:
    if not args.tiny and size == 320:
        return REPO / "models" / "default.onnx"  # the shipped model is edge's 320 point as it is
    out = work / f"edge_{size}.onnx"
    _export([str(source)], out, size, args.no_verify)
    return out


def _export(what: list[str], out: Path, size: int, no_verify: bool) -> None:
    if out.is_file():
        _say(f"reusing {out}")
        return
    _say(f"exporting {out.name}: edge export {' '.join(what)} -o {out} --imgsz {size}")
    argv = ["export", *what, "-o", str(out), "--imgsz", str(size), "--calib-images", "4"]
    argv += ["--no-verify"] if no_verify else []
    started = time.perf_counter()
    # one process per export: TensorFlow keeps what each conversion allocated (a 640 RetinaNet
    # after the others ran this 24 GiB machine out of memory); its report is progress (stderr)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rc = subprocess.run(
        [sys.executable, "-m", "edge", *argv, "--runs", "1"], stdout=sys.stderr, env=env
    ).returncode
    if rc != 0:
        raise SystemExit(f"edge {' '.join(argv)}: exit code {rc}")
    _say(f"  {out.name} in {time.perf_counter() - started:.0f} s")


def _model_spec(spec: str) -> tuple[str, Path]:
    name, sep, file = spec.partition("=")
    path = Path(file)
    if not sep or not name or path.suffix != ".onnx" or not path.is_file():
        _fail(f"--model {spec}: give NAME=FILE.onnx with an existing .onnx file")
    return name, path


def add_model(rows: dict[str, Row], name: str, path: Path) -> None:
    """`--model NAME=FILE.onnx`: the file fills its fixed size's column, or (dynamic) the rest."""
    from edge.runtime.session import ModelSession, SessionOptions

    row = rows.setdefault(name, Row(name))
    s = ModelSession(path, SessionOptions(device="cpu", warmup=0))
    dims = s.input_shape[2:4] if s.contract.layout == "NCHW" else s.input_shape[1:3]
    if all(isinstance(d, int) and d > 0 for d in dims):
        row.files[int(dims[0])] = path
    else:
        row.dynamic = path


BUILDERS = {}  # family -> builder(tiny) filled below


def dfine_nano(tiny: bool = False):
    """D-FINE nano-sized: the dfine_nano_coco configuration (HGNetV2-B0, hidden 128, 3 decoder
    layers, 300 queries, 80 classes), random weights, anchors at 640 like the preset."""
    import keras_hub
    from keras_hub.src.models.d_fine.d_fine_backbone import DFineBackbone
    from keras_hub.src.models.hgnetv2.hgnetv2_backbone import HGNetV2Backbone

    if tiny:
        from tests import hub_presets

        return hub_presets.dfine(num_classes=3, size=128)
    size = 640
    hgnet = HGNetV2Backbone(
        stem_channels=[3, 16, 16],
        # [in, mid, out, blocks, layers, kernel] per stage: HGNetV2-B0
        stackwise_stage_filters=[
            [16, 16, 64, 1, 3, 3],
            [64, 32, 256, 1, 3, 3],
            [256, 64, 512, 2, 3, 5],
            [512, 128, 1024, 1, 3, 5],
        ],
        apply_downsample=[False, True, True, True],
        use_lightweight_conv_block=[False, False, True, True],
        depths=[1, 1, 2, 1],
        hidden_sizes=[64, 256, 512, 1024],
        embedding_size=16,
        use_learnable_affine_block=True,
        hidden_act="relu",
        image_shape=(size, size, 3),
        out_features=["stage3", "stage4"],
    )
    backbone = DFineBackbone(
        backbone=hgnet,
        decoder_in_channels=[128, 128],
        encoder_hidden_dim=128,
        num_denoising=0,  # training-only queries; 0 gives the preset's parameter count exactly
        num_labels=80,
        hidden_dim=128,
        learn_initial_query=False,
        num_queries=300,
        anchor_image_size=(size, size),
        feat_strides=[16, 32],
        num_feature_levels=2,
        encoder_in_channels=[512, 1024],
        encode_proj_layers=[1],
        num_attention_heads=8,
        encoder_ffn_dim=512,
        num_encoder_layers=1,
        hidden_expansion=0.34,
        depth_multiplier=0.5,
        eval_idx=-1,
        num_decoder_layers=3,
        decoder_attention_heads=8,
        decoder_ffn_dim=512,
        decoder_n_points=[6, 6],
        lqe_hidden_dim=64,
        num_lqe_layers=2,
        out_features=["stage3", "stage4"],
        image_shape=(size, size, 3),
    )
    converter = keras_hub.layers.DFineImageConverter(image_size=(size, size), scale=1 / 255)
    return keras_hub.models.DFineObjectDetector(
        backbone=backbone,
        num_classes=80,
        preprocessor=keras_hub.models.DFineObjectDetectorPreprocessor(image_converter=converter),
    )


def retinanet_r50(tiny: bool = False):
    """RetinaNet ResNet50-FPN (P3-P7, 4 head convs): retinanet_resnet50_fpn_coco's configuration
    with 80 classes, random weights, ImageNet normalisation."""
    import keras_hub
    from keras_hub.src.models.resnet.resnet_backbone import ResNetBackbone
    from keras_hub.src.models.retinanet.retinanet_backbone import RetinaNetBackbone

    if tiny:
        from tests import hub_presets

        return hub_presets.retinanet(num_classes=3, size=64)
    encoder = ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[3, 4, 6, 3],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="bottleneck_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )
    backbone = RetinaNetBackbone(
        image_encoder=encoder, min_level=3, max_level=7, use_p5=False, image_shape=(None, None, 3)
    )
    converter = keras_hub.layers.RetinaNetImageConverter(
        image_size=(640, 640),
        scale=[1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)],
        offset=[-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
    )
    model = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone,
        num_classes=80,
        preprocessor=keras_hub.models.RetinaNetObjectDetectorPreprocessor(
            image_converter=converter
        ),
    )
    # as in tests/hub_presets.py: random box-head weights put boxes thousands of pixels away,
    # past the export's parity limit; a trained head's deltas are small
    kernel, bias = model.box_head.weights[-2:]
    kernel.assign(kernel * 0.01)
    bias.assign(bias * 0.0)
    return model


BUILDERS.update(dfine_nano=dfine_nano, retinanet_r50=retinanet_r50)


# -- timing ------------------------------------------------------------------------------------


def time_rows(rows: list[Row], sizes: list[int], args: argparse.Namespace) -> None:
    """Every round times every (model, size) once, `edge bench`'s way; keeps the best p50."""
    from edge.export.benchmark import bench_input, time_calls
    from edge.runtime.session import ModelSession, SessionOptions

    cases = []
    for row in rows:
        for size in sizes:
            path = row.file_for(size)
            if path is None:
                continue
            s = ModelSession(path, SessionOptions(device="cpu", threads=args.threads, warmup=0))
            x, _ = bench_input(s, (size, size))
            cases.append((row, size, s, x))
    for r in range(1, args.rounds + 1):
        for row, size, s, x in cases:
            ms = time_calls(lambda s=s, x=x: s.run(x), args.runs, args.warmup)
            p50 = float(np.percentile(ms, 50))
            row.best_ms[size] = min(p50, row.best_ms.get(size, p50))
            _say(
                f"round {r}/{args.rounds}  {row.name:<14} {size:>4}: p50 {p50:8.2f} ms  (load {_load()})"
            )


def params(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer) if model else 0


def format_table(rows: list[Row], sizes: list[int], reference: str) -> str:
    ref = next((r for r in rows if r.name == reference), None)
    head = f"| model | params | {' | '.join(f'p50 ms {s}' for s in sizes)} |"
    if ref:
        head += f" {' | '.join(f'{s} vs {reference}' for s in sizes)} |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for row in rows:
        first = next((row.file_for(s) for s in sizes if row.file_for(s)), None)
        count = f"{params(first) / 1e6:.2f}M" if first else "-"
        cells = [f"{row.best_ms[s]:.2f}" if s in row.best_ms else "-" for s in sizes]
        if ref:
            cells += [
                f"{row.best_ms[s] / ref.best_ms[s]:.2f}x"
                if s in row.best_ms and s in ref.best_ms
                else "-"
                for s in sizes
            ]
        lines.append(f"| {row.name} | {count} | {' | '.join(cells)} |")
    return "\n".join(lines)


def to_dict(rows: list[Row], sizes: list[int], args: argparse.Namespace) -> dict:
    from edge.runtime.machine import machine_info

    return {
        "machine": machine_info(),
        "rounds": args.rounds,
        "runs": args.runs,
        "sizes": sizes,
        "models": [
            {
                "name": r.name,
                "files": {str(s): str(r.file_for(s)) for s in sizes if r.file_for(s)},
                "best_p50_ms": {str(s): v for s, v in r.best_ms.items()},
            }
            for r in rows
        ],
    }


if __name__ == "__main__":
    raise SystemExit(main())
