"""A fix for KerasHub 0.32's D-FINE matcher, installed before `edge train --init` builds its loss.

`hungarian_matcher` (keras_hub/src/models/d_fine/d_fine_loss.py:147-152) pads each image's
[queries, queries] cost matrix with 1e9 in the columns past its real targets and hands it to
`hungarian_assignment` (d_fine_utils.py). In float32 a cost of a few units next to 1e9 is below
the rounding step (64), so the algorithm's reductions lose the real costs and it returns a
matching that is not the cheapest (for one target, not even the query of least cost): queries
are trained towards the wrong objects and a model learns next to nothing. Every padded column
holding the same value leaves the optimal matching of the real columns unchanged, so the fix
pads with the largest real cost instead of 1e9 before calling KerasHub's own algorithm.
"""

from __future__ import annotations

from typing import Any

PADDED = 1e8  # KerasHub pads with 1e9; no real cost (class + box + GIoU terms) comes near it


def install() -> None:
    """Make KerasHub's D-FINE loss match with `fixed(...)` (idempotent)."""
    from keras_hub.src.models.d_fine import d_fine_loss

    if not getattr(d_fine_loss.hungarian_assignment, "edge_fixed", False):
        d_fine_loss.hungarian_assignment = fixed(d_fine_loss.hungarian_assignment)


def fixed(assignment: Any) -> Any:
    """`assignment(cost_matrix, num_queries)` with the padded entries (>= PADDED) set to the
    largest real cost first."""
    import keras

    def assign(cost_matrix: Any, num_queries: int) -> Any:
        padded = cost_matrix >= PADDED
        lowest = keras.ops.min(cost_matrix)
        largest = keras.ops.max(keras.ops.where(padded, lowest, cost_matrix))
        return assignment(keras.ops.where(padded, largest, cost_matrix), num_queries)

    assign.edge_fixed = True  # type: ignore[attr-defined]
    return assign
