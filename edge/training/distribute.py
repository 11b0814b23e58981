"""Where training runs: one device, MirroredStrategy (TensorFlow), DataParallel or ModelParallel
(JAX: weights sharded over a (batch, model) device mesh, for models too large for one device).

Several visible accelerators are used together by default; `devices` caps the count. With no
accelerator, the visible CPU devices form the pool (one, unless split for testing). JAX also
spans machines: every process calls `keras.distribution.initialize`, reads its own shard, and one
DataParallel over every process's devices keeps the replicas equal.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras

from edge.errors import EdgeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """The devices of this run; `scope()` is where models and optimizers must be created."""

    backend: str
    devices: tuple[str, ...]
    accelerator: bool
    strategy: Any = None  # a tf.distribute.Strategy on TensorFlow with several devices
    process_id: int = 0
    num_processes: int = 1

    @property
    def replicas(self) -> int:
        return len(self.devices)

    @property
    def chief(self) -> bool:
        """Whether this process writes files (process 0 of a multi-machine run)."""
        return self.process_id == 0

    def global_batch(self, rows: Any) -> Any:
        """This process's `rows` of a batch as the whole batch, spread over every process as
        `fit` feeds it (JAX with several processes); `rows` unchanged otherwise."""
        if self.num_processes == 1:
            return rows
        import jax

        layout = keras.distribution.distribution().get_data_layout(rows.shape)
        return jax.make_array_from_process_local_data(layout.backend_layout, rows)

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        if self.strategy is None:
            yield
        else:
            with self.strategy.scope():
                yield


def place(
    devices: int | None = None,
    *,
    coordinator: str | None = None,
    num_processes: int = 1,
    process_id: int = 0,
    model_parallel: int = 1,
    weight_shapes: dict[str, tuple[int, ...]] | None = None,
) -> Placement:
    """Pick the devices for this run and set up their distribution (call before building).

    `model_parallel` N > 1 (JAX): the devices form a (devices / N, N) mesh of axes (batch,
    model); the batch is split over the first, and each kernel in `weight_shapes` (variable path
    -> shape, from a model built the same way) whose output channels divide by N over the second.
    """
    backend = keras.backend.backend()
    if model_parallel > 1:
        if backend != "jax" or num_processes > 1:
            raise EdgeError(
                "--model-parallel needs the JAX backend (KERAS_BACKEND=jax), one process"
            )
        return _place_model_parallel(devices, model_parallel, weight_shapes or {})
    if backend == "jax":
        return _place_jax(devices, coordinator, num_processes, process_id)
    if coordinator is not None or num_processes > 1:
        raise EdgeError("multi-machine training needs the JAX backend (KERAS_BACKEND=jax)")
    if backend == "tensorflow":
        return _place_tensorflow(devices)
    if devices not in (None, 1):
        raise EdgeError(f"several devices need the tensorflow or jax backend, not {backend}")
    return Placement(backend, ("default",), accelerator=False)


def _choose(pool: list[str], devices: int | None, kind: str) -> list[str]:
    n = len(pool) if devices is None else devices
    if n > len(pool):
        raise EdgeError(f"asked for {n} devices but only {len(pool)} {kind} device(s) are visible")
    return pool[:n]


def _place_jax(
    devices: int | None, coordinator: str | None, num_processes: int, process_id: int
) -> Placement:
    if coordinator is not None:
        keras.distribution.initialize(coordinator, num_processes, process_id)
    try:
        pool, accelerator = list(keras.distribution.list_devices("gpu")), True
    except RuntimeError:
        pool, accelerator = [], False
    if not pool:
        pool, accelerator = list(keras.distribution.list_devices("cpu")), False
    kind = "gpu" if accelerator else "cpu"
    if num_processes > 1:  # `devices` caps each process's share; the pool spans every process
        chosen = [d for own in _by_process(pool, kind) for d in _choose(own, devices, kind)]
    else:
        chosen = _choose(pool, devices, kind)
    if len(chosen) > 1:
        # Several processes: each already reads its own shard (see edge.training.fit).
        distribution = keras.distribution.DataParallel(
            devices=chosen, auto_shard_dataset=num_processes == 1
        )
        keras.distribution.set_distribution(distribution)
    log.info("jax: training on %d device(s): %s", len(chosen), ", ".join(map(str, chosen)))
    return Placement("jax", tuple(map(str, chosen)), accelerator, None, process_id, num_processes)


def _place_model_parallel(
    devices: int | None, parts: int, weight_shapes: dict[str, tuple[int, ...]]
) -> Placement:
    try:
        pool, accelerator = list(keras.distribution.list_devices("gpu")), True
    except RuntimeError:
        pool, accelerator = [], False
    if not pool:
        pool, accelerator = list(keras.distribution.list_devices("cpu")), False
    chosen = _choose(pool, devices, "gpu" if accelerator else "cpu")
    if len(chosen) % parts:
        raise EdgeError(
            f"--model-parallel {parts} must divide the {len(chosen)} devices (use --devices)"
        )
    mesh = keras.distribution.DeviceMesh(
        (len(chosen) // parts, parts), ["batch", "model"], devices=chosen
    )
    layout = layout_map(mesh, weight_shapes)
    keras.distribution.set_distribution(
        keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")
    )
    log.info(
        "jax: model parallel over a %dx%d (batch, model) mesh; %d of %d weights sharded",
        len(chosen) // parts,
        parts,
        len(layout),
        len(weight_shapes),
    )
    return Placement("jax", tuple(map(str, chosen)), accelerator)


def layout_map(mesh: Any, weight_shapes: dict[str, tuple[int, ...]]) -> Any:
    """Kernels (conv 4-D, dense 2-D) split on their output channels over the mesh's `model` axis
    where those divide evenly; everything else (biases, BatchNorm, depthwise kernels) replicated.
    Exact variable paths, so no pattern can match two rules."""
    parts = mesh.shape[list(mesh.axis_names).index("model")]
    layout = keras.distribution.LayoutMap(mesh)
    for path, shape in weight_shapes.items():
        if not path.endswith("kernel") or "depthwise" in path or len(shape) not in (2, 4):
            continue
        if shape[-1] % parts == 0 and shape[-1] >= parts:
            layout[path] = (None,) * (len(shape) - 1) + ("model",)
    return layout


def _by_process(pool: list[str], kind: str) -> list[list[str]]:
    """Device names (Keras' "platform:id") grouped by the process that owns them."""
    import jax

    owner = {f"{d.platform}:{d.id}": d.process_index for d in jax.devices(kind)}
    groups: dict[int, list[str]] = {}
    for name in pool:
        groups.setdefault(owner[name], []).append(name)
    return [groups[p] for p in sorted(groups)]


def _place_tensorflow(devices: int | None) -> Placement:
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    pool = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    chosen = _choose(pool, devices, "gpu" if gpus else "cpu")
    strategy = tf.distribute.MirroredStrategy(chosen) if len(chosen) > 1 else None
    log.info("tensorflow: training on %d device(s): %s", len(chosen), ", ".join(chosen))
    return Placement("tensorflow", tuple(chosen), bool(gpus), strategy)


def set_precision(precision: str, placement: Placement) -> str:
    """Set Keras' global dtype policy; "mixed" means float16 compute on accelerators only."""
    if precision == "mixed" and not placement.accelerator:
        log.warning("--precision mixed needs a GPU; training in fp32 on the CPU")
        precision = "fp32"
    keras.config.set_dtype_policy("mixed_float16" if precision == "mixed" else "float32")
    return precision
