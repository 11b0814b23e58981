"""COCO metrics: hand-worked cases, the empty cases, bad input, and a cross-check of pycocotools
against an independent 101-point AP written here."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.data.dataset import Sample
from edge.evaluation import (
    EvalResult,
    as_detections,
    coco_metrics,
    format_table,
    write_json,
)
from edge.types import Detections

GT = [0.0, 0.0, 100.0, 100.0]  # area 10000: a box [0, 0, 100, h] inside it has IoU h / 100


def det(boxes: list[list[float]], scores: list[float], classes: list[int]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, classes)


def truth(boxes: list[list[float]], classes: list[int]) -> Detections:
    return det(boxes, [1.0] * len(classes), classes)


NAN = math.nan
# (id, predictions per image, truths per image, names, AP50-95 per class, AP50 per class)
# AP is the mean of 101 interpolated precisions (recall 0, 0.01, ..., 1) and, for AP50-95, the mean
# over IoU 0.50, 0.55, ..., 0.95. Finding one of two boxes at precision 1 covers recall 0..0.5:
# 51 of the 101 points, so AP = 51/101.
CASES = [
    ("perfect", [det([GT], [0.9], [0])], [truth([GT], [0])], ["a"], [1.0], [1.0]),
    # IoU 0.52 passes only the 0.50 threshold: 1 of 10.
    ("iou_0.52", [det([[0, 0, 100, 52]], [0.9], [0])], [truth([GT], [0])], ["a"], [0.1], [1.0]),
    # IoU 0.72 passes 0.50 .. 0.70: 5 of 10.
    ("iou_0.72", [det([[0, 0, 100, 72]], [0.9], [0])], [truth([GT], [0])], ["a"], [0.5], [1.0]),
    ("iou_0.97", [det([[0, 0, 100, 97]], [0.9], [0])], [truth([GT], [0])], ["a"], [1.0], [1.0]),
    ("iou_0.40", [det([[0, 0, 100, 40]], [0.9], [0])], [truth([GT], [0])], ["a"], [0.0], [0.0]),
    (
        "one_of_two_found",
        [det([GT], [0.9], [0])],
        [truth([GT, [200, 200, 300, 300]], [0, 0])],
        ["a"],
        [51 / 101],
        [51 / 101],
    ),
    # FP ranked above the TP: precision 0 then 1/2; the envelope is 1/2 at every recall point.
    (
        "fp_before_tp",
        [det([[500, 500, 600, 600], GT], [0.9, 0.5], [0, 0])],
        [truth([GT], [0])],
        ["a"],
        [0.5],
        [0.5],
    ),
    # FP after full recall costs nothing; a duplicate of a matched box is such a FP.
    (
        "duplicate_after_tp",
        [det([GT, GT], [0.9, 0.8], [0, 0])],
        [truth([GT], [0])],
        ["a"],
        [1],
        [1],
    ),
    # 3 truths; ranks TP, FP, TP: (recall, precision) = (1/3, 1), (1/3, 1/2), (2/3, 2/3).
    # Recall points 0..0.33 (34) take 1, 0.34..0.66 (33) take 2/3, the rest 0: (34 + 22) / 101.
    (
        "tp_fp_tp_of_three",
        [det([GT, [900, 900, 950, 950], [200, 200, 300, 300]], [0.9, 0.8, 0.7], [0, 0, 0])],
        [truth([GT, [200, 200, 300, 300], [400, 400, 500, 500]], [0, 0, 0])],
        ["a"],
        [56 / 101],
        [56 / 101],
    ),
    ("no_predictions", [Detections.empty()], [truth([GT], [0])], ["a"], [0.0], [0.0]),
    # The right box with the wrong class: class a is missed, class b has no truth (nan, left out).
    ("wrong_class", [det([GT], [0.9], [1])], [truth([GT], [0])], ["a", "b"], [0, NAN], [0, NAN]),
    (
        "one_class_found_one_missed",
        [det([GT], [0.9], [0])],
        [truth([GT, [200, 200, 300, 300]], [0, 1])],
        ["a", "b"],
        [1.0, 0.0],
        [1.0, 0.0],
    ),
    # An image with no truth: its confident box is a FP ranked above the TP of the other image.
    (
        "fp_on_empty_image",
        [det([GT], [0.5], [0]), det([GT], [0.9], [0])],
        [truth([GT], [0]), Detections.empty()],
        ["a"],
        [0.5],
        [0.5],
    ),
    ("no_truth_at_all", [det([GT], [0.9], [0])], [Detections.empty()], ["a"], [NAN], [NAN]),
    ("no_images", [], [], ["a", "b"], [NAN, NAN], [NAN, NAN]),
]


@pytest.mark.parametrize(
    ("preds", "truths", "names", "ap50_95", "ap50"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_hand_worked_cases(
    preds: list[Detections],
    truths: list[Detections],
    names: list[str],
    ap50_95: list[float],
    ap50: list[float],
) -> None:
    r = coco_metrics(preds, truths, names)
    np.testing.assert_allclose(r.ap50_95, ap50_95, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(r.ap50, ap50, atol=1e-9, equal_nan=True)
    present = ~np.isnan(np.array(ap50_95))
    want_map = np.mean(np.array(ap50_95)[present]) if present.any() else NAN
    want_map50 = np.mean(np.array(ap50)[present]) if present.any() else NAN
    np.testing.assert_allclose([r.map50_95, r.map50], [want_map, want_map50], atol=1e-9)
    assert r.num_images == len(truths)
    assert r.num_predictions == sum(len(p) for p in preds)
    assert r.precision.shape == (10, 101, len(names))


def test_samples_count_as_truth() -> None:
    sample = Sample(Path("a.png"), 640, 480, np.array([GT, [200, 200, 300, 300]]), np.array([0, 1]))
    r = coco_metrics([det([GT], [0.9], [0])], [sample], ["a", "b"])
    np.testing.assert_allclose(r.ap50, [1.0, 0.0], atol=1e-9)
    assert r.num_truths.tolist() == [1, 1]
    assert as_detections(sample).class_id.tolist() == [0, 1]


def test_max_dets_keeps_the_best_per_image_and_class() -> None:
    preds = [det([[500, 500, 600, 600], GT], [0.9, 0.5], [0, 0])]
    assert coco_metrics(preds, [truth([GT], [0])], ["a"], max_dets=2).map50 == pytest.approx(0.5)
    assert coco_metrics(preds, [truth([GT], [0])], ["a"], max_dets=1).map50 == 0.0


def test_pycocotools_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    coco_metrics([det([GT], [0.9], [0])], [truth([GT], [0])], ["a"])
    assert capsys.readouterr().out == ""


def test_inputs_are_not_mutated() -> None:
    p, t = det([[0, 0, 100, 52]], [0.9], [0]), truth([GT], [0])
    before = (p.xyxy.copy(), p.score.copy(), t.xyxy.copy())
    coco_metrics([p], [t], ["a"])
    np.testing.assert_array_equal(p.xyxy, before[0])
    np.testing.assert_array_equal(p.score, before[1])
    np.testing.assert_array_equal(t.xyxy, before[2])


@pytest.mark.parametrize(
    ("preds", "truths", "names", "kwargs", "match"),
    [
        ([], [truth([GT], [0])], ["a"], {}, "0 predictions but 1"),
        (
            [det([GT], [0.9], [2])],
            [truth([GT], [0])],
            ["a", "b"],
            {},
            r"predictions\[0\].*\[0, 2\)",
        ),
        ([det([GT], [0.9], [0])], [truth([GT], [-1])], ["a"], {}, r"truths\[0\].*\[0, 1\)"),
        ([det([[0, 0, np.nan, 1]], [0.9], [0])], [truth([GT], [0])], ["a"], {}, "non-finite"),
        ([det([GT], [np.inf], [0])], [truth([GT], [0])], ["a"], {}, "non-finite"),
        ([det([GT], [0.9], [0])], [truth([[0, 0, np.inf, 1]], [0])], ["a"], {}, "non-finite"),
        ([det([GT], [0.9], [0])], [truth([GT], [0])], [], {}, "names"),
        ([det([GT], [0.9], [0])], [truth([GT], [0])], ["a"], {"max_dets": 0}, "max_dets"),
        ([det([GT], [0.9], [0])], [np.array([GT])], ["a"], {}, "Sample or Detections"),
    ],
    ids=[
        "length",
        "pred_class",
        "truth_class",
        "nan_box",
        "inf_score",
        "inf_truth",
        "no_names",
        "max_dets",
        "truth_type",
    ],
)
def test_bad_input_raises_value_error(
    preds: list[Detections], truths: list, names: list[str], kwargs: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        coco_metrics(preds, truths, names, **kwargs)


# --- an independent implementation to cross-check pycocotools on a random case ---------------


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / (area + areas - inter)


def _reference_ap(preds: list[Detections], truths: list[Detections], c: int, t: float) -> float:
    """Greedy matching by score per image, then the 101-point interpolated AP (COCO's)."""
    npos = sum(int((g.class_id == c).sum()) for g in truths)
    if npos == 0:
        return NAN
    scores, hits = [], []
    for p, g in zip(preds, truths, strict=True):
        pb, ps = p.xyxy[p.class_id == c].astype(np.float64), p.score[p.class_id == c]
        gb = g.xyxy[g.class_id == c].astype(np.float64)
        taken = np.zeros(len(gb), bool)
        for j in np.argsort(-ps, kind="stable"):
            ious = _iou(pb[j], gb) if len(gb) else np.zeros(0)
            ious[taken] = -1.0
            hit = len(ious) > 0 and ious.max() >= t
            if hit:
                taken[int(ious.argmax())] = True
            scores.append(ps[j])
            hits.append(hit)
    order = np.argsort(-np.array(scores), kind="stable")
    tp = np.cumsum(np.array(hits, bool)[order])
    recall = tp / npos
    precision = tp / np.arange(1, len(tp) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    points = []
    for r in np.linspace(0, 1, 101):
        reached = np.nonzero(recall >= r)[0]
        points.append(envelope[reached[0]] if len(reached) else 0.0)
    return float(np.mean(points))


def _random_case(seed: int) -> tuple[list[Detections], list[Detections]]:
    """20 images, 3 classes: jittered truths (some relabelled), misses, and random false boxes."""
    rng = np.random.default_rng(seed)
    truths, preds = [], []
    for _ in range(20):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 400, (n, 2))
        gt = np.concatenate([xy, xy + rng.uniform(10, 120, (n, 2))], axis=1)
        cls = rng.integers(0, 3, n)
        truths.append(Detections(gt, np.ones(n), cls))
        found = rng.random(n) < 0.8
        jitter = gt[found] + rng.normal(0, 8, (int(found.sum()), 4))
        wrong = rng.random(int(found.sum())) < 0.1
        pcls = np.where(wrong, (cls[found] + 1) % 3, cls[found])
        k = int(rng.integers(0, 4))
        fxy = rng.uniform(0, 400, (k, 2))
        false = np.concatenate([fxy, fxy + rng.uniform(10, 120, (k, 2))], axis=1)
        boxes = np.concatenate([jitter, false])
        preds.append(
            Detections(boxes, np.zeros(len(boxes)), np.concatenate([pcls, rng.integers(0, 3, k)]))
        )
    # Distinct scores everywhere, so the ranking has no ties to break differently.
    total = sum(len(p) for p in preds)
    scores = (rng.permutation(total) + 1) / (total + 1)
    out, at = [], 0
    for p in preds:
        out.append(Detections(p.xyxy, scores[at : at + len(p)], p.class_id))
        at += len(p)
    return out, truths


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_an_independent_implementation(seed: int) -> None:
    preds, truths = _random_case(seed)
    r = coco_metrics(preds, truths, ["a", "b", "c"])
    ref = np.array(
        [[_reference_ap(preds, truths, c, t) for t in np.linspace(0.5, 0.95, 10)] for c in range(3)]
    )
    np.testing.assert_allclose(r.ap50, ref[:, 0], atol=1e-6)
    np.testing.assert_allclose(r.ap50_95, ref.mean(axis=1), atol=1e-6)
    assert r.map50_95 == pytest.approx(np.nanmean(ref.mean(axis=1)), abs=1e-6)
    assert 0.2 < r.map50 < 1.0  # a case that exercises partial recall and false positives


# --- result helpers: PR curve, table, JSON -----------------------------------------------------


def _partial() -> EvalResult:
    return coco_metrics(
        [det([GT], [0.9], [0])], [truth([GT, [200, 200, 300, 300]], [0, 0])], ["a", "b"]
    )


def test_pr_curve() -> None:
    recall, precision = _partial().pr_curve(0)
    assert recall.shape == precision.shape == (101,)
    np.testing.assert_allclose(precision[:51], 1.0, atol=1e-9)
    np.testing.assert_array_equal(precision[51:], 0.0)
    assert np.isnan(_partial().pr_curve(1)[1]).all()  # class b has no truth
    with pytest.raises(ValueError, match="class_id"):
        _partial().pr_curve(2)


def test_table_lists_every_class_and_dashes_absent_ones() -> None:
    lines = format_table(_partial()).splitlines()
    assert lines[0].split() == ["class", "truths", "AP50-95", "AP50"]
    assert lines[1].split() == ["all", "2", "0.5050", "0.5050"]
    assert lines[3].split() == ["b", "0", "-", "-"]
    assert lines[-1] == "1 images, 1 predictions"


def test_write_json_is_valid_json_with_null_for_nan(tmp_path: Path) -> None:
    path = write_json(_partial(), tmp_path / "sub" / "metrics.json", model="m.onnx")
    data = json.loads(path.read_text())
    assert data["map50"] == pytest.approx(51 / 101)
    assert data["per_class"]["b"] == {"ap50_95": None, "ap50": None, "num_truths": 0}
    assert data["model"] == "m.onnx"
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp file left


def test_no_heavy_imports_at_module_level() -> None:
    code = (
        "import sys, edge.evaluation, edge.evaluation.plots, edge.cli.eval\n"
        "heavy = ('pycocotools', 'matplotlib', 'tensorflow', 'keras')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
