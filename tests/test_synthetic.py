from __future__ import annotations

import numpy as np
import pytest

from edge.sources.synthetic import CLASS_NAMES, SyntheticScene, render_still


def test_scene_is_deterministic_and_moves():
    a, b = SyntheticScene(160, 120, seed=3), SyntheticScene(160, 120, seed=3)
    f0, f0b, f30 = a.frame(0), b.frame(0), a.frame(30)
    assert np.array_equal(f0.image, f0b.image) and np.array_equal(f0.boxes, f0b.boxes)
    assert f0.image.shape == (120, 160, 3) and f0.image.dtype == np.uint8
    common = np.intersect1d(f0.track_ids, f30.track_ids)
    assert len(common) > 0
    i0 = list(f0.track_ids).index(common[0])
    i1 = list(f30.track_ids).index(common[0])
    assert not np.allclose(f0.boxes[i0], f30.boxes[i1])  # objects move


def test_boxes_are_inside_and_cover_the_objects():
    for seed in range(20):
        f = render_still(seed, 96, 80)
        assert f.boxes.shape[1] == 4 and len(f.boxes) == len(f.class_ids) == len(f.track_ids)
        assert (
            (f.boxes[:, :2] >= 0).all()
            and (f.boxes[:, 2] <= 96).all()
            and (f.boxes[:, 3] <= 80).all()
        )
        assert (f.boxes[:, 2:] > f.boxes[:, :2]).all()
        assert set(f.class_ids.tolist()) <= set(range(len(CLASS_NAMES)))


def test_stills_differ_by_seed():
    assert not np.array_equal(render_still(1).image, render_still(2).image)


@pytest.mark.parametrize("kw", [{"width": 8}, {"fps": 0}, {"objects": 0}])
def test_bad_scene_arguments(kw):
    with pytest.raises(ValueError):
        SyntheticScene(**kw)
