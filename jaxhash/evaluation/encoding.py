"""Encoding: a model's outputs z for every example of a stream of batches, in order.

:func:`encode` runs a jitted ``z = apply_fn(variables, x)`` over batches sharded on a mesh
(padded to one compiled shape, padded and masked rows dropped), optionally packing the codes
on the device. :func:`encode_split` feeds it a data set's split (``jaxhash.data``) and keeps
each example's label, id and caption embedding beside its z; with several processes each
encodes its share and all receive the full arrays. The evaluator
(:class:`jaxhash.evaluation.Evaluator`) and the image-file encoder
(:class:`jaxhash.image_index.Encoder`) encode through here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxhash.parallel import DATA_AXIS, process_concat, process_mesh
from jaxhash.retrieval import check_mesh, pack_codes


def _batch_inputs(batch, input_key: str):
    """``(inputs, mask or None)`` of one batch: an array, or a mapping with ``input_key`` and an
    optional bool ``"mask"`` of valid rows."""
    if isinstance(batch, dict):
        if input_key not in batch:
            raise ValueError(
                f"a batch is a mapping without the input key {input_key!r} (keys: "
                f"{sorted(batch)}); pass input_key=..."
            )
        return batch[input_key], batch.get("mask")
    return batch, None


def encode(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    batches: Iterable,
    *,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    input_key: str = "image",
    pack: bool = False,
) -> jax.Array:
    """Outputs ``z = apply_fn(params, x)`` of every example of ``batches``, in order.

    ``apply_fn`` must run the model in eval mode (e.g. ``functools.partial(model.apply,
    train=False)``). Each batch is an array ``[B, ...]`` or a mapping with ``input_key`` and an
    optional bool ``"mask"`` ``[B]`` of real rows (padded examples are False). Every batch is padded
    to the size of the largest seen so far (one compiled shape; with a mesh, to a multiple of the
    device count) and placed with ``NamedSharding(mesh, P(axis_name))``; ``params`` are
    replicated. Padded and masked-out rows are dropped, so no example is lost or duplicated.

    Returns:
      ``float32 [N, K]`` outputs (take the sign, or pass ``pack=True`` for packed codes
      ``uint8 [N, ceil(K / 8)]``, packed on the device per batch).
    """
    num_devices = check_mesh(mesh, axis_name)
    if mesh is not None:
        params = jax.device_put(params, NamedSharding(mesh, P()))
        in_sharding = NamedSharding(mesh, P(axis_name))
    step = _encode_step(apply_fn, pack)
    outputs, size = [], 0
    for batch in batches:
        inputs, mask = _batch_inputs(batch, input_key)
        inputs = jnp.asarray(inputs) if not isinstance(inputs, jax.Array) else inputs
        n = inputs.shape[0] if inputs.ndim else 0
        if n == 0:
            continue
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (n,) or mask.dtype != np.bool_:
                raise ValueError(
                    f"a batch's mask must be bool [{n}] (one flag per row); got {mask.dtype} "
                    f"{mask.shape}."
                )
        size = max(size, -(-n // num_devices) * num_devices)
        if n < size:
            inputs = jnp.pad(inputs, ((0, size - n),) + ((0, 0),) * (inputs.ndim - 1))
        if mesh is not None:
            inputs = jax.device_put(inputs, in_sharding)
        out = step(params, inputs)
        keep = np.arange(size) < n
        if mask is not None:
            keep[:n] &= mask
        outputs.append(out[np.flatnonzero(keep)] if not keep.all() else out)
    if not outputs:
        raise ValueError("batches yielded no examples.")
    device = jax.local_devices()[0]  # jax.devices()[0] may be another process's
    return jnp.concatenate([jax.device_put(o, device) for o in outputs], axis=0)


@functools.lru_cache(maxsize=32)
def _encode_step(apply_fn, pack: bool):
    def step(params, inputs):
        z = apply_fn(params, inputs)
        if z.ndim != 2:
            raise ValueError(f"apply_fn must return [B, K] outputs; got shape {z.shape}.")
        return pack_codes(z) if pack else z.astype(jnp.float32)

    return jax.jit(step)


def _process_local(tree):
    """Replicated global arrays as this process's copy (evaluation runs per process)."""

    def local(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return x.addressable_data(0)
        return x

    return jax.tree_util.tree_map(local, tree)


def encode_split(
    z_fn: Callable[[Any, jax.Array], jax.Array],
    variables,
    config,
    mesh: Mesh,
    split: str,
    subset: str = "all",
):
    """Outputs z ``[N, K]`` (float32), labels ``[N]`` (None for caption data), example ids
    ``[N]`` and caption embeddings ``[N, E]`` (None unless the batches carry them), in order,
    of ``split`` encoded by ``z_fn(variables, images)`` (``config`` validated).

    One process: the global batches of ``data.eval_batches`` sharded over the mesh. Several
    processes: each encodes its own share of the split (``data.host_eval_batches``: a
    contiguous range, the same number of padded batches on every host) on its devices of
    the mesh, with no collective per batch; :func:`jaxhash.parallel.process_concat` then
    joins the de-padded rows in process order, which is the one-process order, so every
    process returns the same full arrays.
    """
    from jaxhash import data

    fields: dict[str, list] = {"label": [], "id": [], "caption_embedding": []}
    batch_size = int(config.eval.batch_size or config.batch_size)
    multi_process = jax.process_count() > 1
    if multi_process:
        mesh, variables = process_mesh(mesh), _process_local(variables)
        source = data.host_eval_batches(config, split, batch_size, subset=subset)
    else:
        source = data.eval_batches(config, split, mesh, batch_size, subset=subset)

    def batches():
        for batch in source:
            valid = np.asarray(batch["mask"])
            for name, values in fields.items():
                if name in batch:
                    values.append(np.asarray(batch[name])[valid])
            yield batch

    z = encode(z_fn, variables, batches(), mesh=mesh, axis_name=DATA_AXIS)
    arrays = {"z": np.asarray(z)}
    arrays.update({name: np.concatenate(values) for name, values in fields.items() if values})
    if multi_process:
        arrays = process_concat(arrays)
    return (
        arrays["z"],
        arrays.get("label"),
        arrays.get("id"),
        arrays.get("caption_embedding"),
    )


__all__ = ["encode", "encode_split"]
