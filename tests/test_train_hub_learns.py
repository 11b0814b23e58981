"""`edge train --init PRESET` makes a KerasHub D-FINE learn: KerasHub 0.32's matcher is fixed
(`edge.training.hub_matcher`).
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("keras_hub")
scipy_optimize = pytest.importorskip("scipy.optimize")
if keras.backend.backend() != "tensorflow":
    pytest.skip("KerasHub D-FINE training is tested on TensorFlow", allow_module_level=True)

from edge.training import hub_matcher  # noqa: E402


@pytest.mark.parametrize("targets", [1, 5])
def test_the_d_fine_matcher_finds_the_cheapest_matching_of_a_padded_cost_matrix(targets) -> None:
    """KerasHub's matcher pads the columns past an image's targets with 1e9 (d_fine_loss.py:147)
    and its `hungarian_assignment` then returns a matching far from the cheapest; installed,
    edge's fix gives scipy's optimum."""
    from keras_hub.src.models.d_fine import d_fine_loss

    hub_matcher.install()
    queries = 20
    cost = np.random.default_rng(targets).uniform(-3, 10, (queries, queries)).astype(np.float32)
    cost[:, targets:] = 1e9  # as hungarian_matcher pads it
    rows, cols, valid = (
        keras.ops.convert_to_numpy(t)
        for t in d_fine_loss.hungarian_assignment(keras.ops.convert_to_tensor(cost), queries)
    )
    matched = valid & (cols < targets)
    assert sorted(cols[matched].tolist()) == list(range(targets))  # every target, once
    assert len(set(rows[matched].tolist())) == targets  # each by its own query
    best_rows, best_cols = scipy_optimize.linear_sum_assignment(cost[:, :targets])
    assert cost[rows[matched], cols[matched]].sum() == pytest.approx(
        cost[best_rows, best_cols].sum(), abs=1e-4
    )
