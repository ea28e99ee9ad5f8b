"""A trained model evaluated on its run's data: encode once, rank once, one report per step.

:class:`Evaluator` is built once per run (``jaxhash.train.run`` and ``jaxhash evaluate``). It
holds the model's encoder, jitted on the first evaluation and reused by every later one (the
periodic ones and the last), and the class-similarity tables. Each :meth:`Evaluator.evaluate`
encodes the evaluation split with a state, ranks the codes once per ranking and scores every
metric from that ranking (:func:`jaxhash.evaluate.evaluate`), and writes one report,
``workdir/eval/step_<N>/report.json``, with its pictures beside it: ``pr_curve.png``,
``hp_at_k.png`` and ``retrieval_grid.png`` (:meth:`Evaluator.retrieval_grid`). The report's
schema is :func:`jaxhash.evaluate.evaluate`'s (protocol, counts, settings, one entry per
ranking under ``rows``: ``hamming``, the real-valued ones such as ``cosine`` and the
``random_codes`` baseline) plus ``step``, ``metrics`` (the Hamming row's summary),
``wall_time_s``, the ``config`` and, for caption data, a ``note``.

With several processes every one calls :meth:`Evaluator.evaluate`: each encodes its share of
the split and all receive the full codes (:meth:`Evaluator.encode`); each then ranks and
scores them on its own devices, so there is no collective in the metrics and every process
returns the same report. Only process 0 writes files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh

from jaxhash import test_time_augmentation
from jaxhash.parallel import DATA_AXIS, process_concat, process_mesh
from jaxhash.retrieval_grid import RetrievalGrid, evaluation_grid
from jaxhash.semantics import class_text


def report_dir(workdir: str | os.PathLike, step: int) -> Path:
    """``workdir/eval/step_<step>``: the folder of the evaluation of checkpoint ``step``."""
    return Path(workdir) / "eval" / f"step_{int(step)}"


def _process_local(tree):
    """Replicated global arrays as this process's copy (evaluation runs per process)."""

    def local(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return x.addressable_data(0)
        return x

    return jax.tree_util.tree_map(local, tree)


def caption_targets(embeddings) -> tuple[np.ndarray, np.ndarray]:
    """Caption data: every image is its own "class", graded by caption similarity.

    Returns labels ``arange(N)`` and the ``[N, N]`` relevance ``max(cos(e_i, e_j), 0)`` of the
    images' caption embeddings ``[N, E]``, for mAHP@k (and the distance of the top-1 item).
    """
    if embeddings is None:
        raise ValueError(
            "caption data is evaluated against caption embeddings: set "
            "config.data.caption_embeddings = True (needs the optional extra 'text')."
        )
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    similarity = np.clip(unit @ unit.T, 0.0, 1.0)
    np.fill_diagonal(similarity, 1.0)
    return np.arange(len(embeddings)), similarity


class Evaluator:
    """The evaluation of one run: its config, data info, model and mesh, and the encoder.

    ``info`` (a ``jaxhash.data.DatasetInfo``) may be None for :meth:`encode` alone.
    """

    def __init__(self, config, info, model, mesh: Mesh):
        self.config, self.info, self.model, self.mesh = config, info, model, mesh
        self._similarity = None  # [C, C] class similarity of config.eval.similarity, once

        # One function object: retrieval.encode compiles it once.
        self._z = test_time_augmentation.encoder(model, config.eval.tta)

    def encode(self, variables, split: str, subset: str = "all"):
        """Outputs z ``[N, K]`` (float32), labels ``[N]`` (None for caption data), example ids
        ``[N]`` and caption embeddings ``[N, E]`` (None unless the batches carry them), in order.

        One process: the global batches of ``data.eval_batches`` sharded over the mesh. Several
        processes: each encodes its own share of the split (``data.host_eval_batches``: a
        contiguous range, the same number of padded batches on every host) on its devices of
        the mesh, with no collective per batch; :func:`jaxhash.parallel.process_concat` then
        joins the de-padded rows in process order, which is the one-process order, so every
        process returns the same full arrays.
        """
        from jaxhash import data, retrieval

        config, mesh = self.config, self.mesh
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

        z = retrieval.encode(self._z, variables, batches(), mesh=mesh, axis_name=DATA_AXIS)
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

    def class_similarity(self) -> np.ndarray | None:
        """``[C, C]`` similarity of ``config.eval.similarity`` (None: a hierarchy's kind and
        no hierarchy; ``jaxhash.semantics.class_text``)."""
        if self._similarity is None:
            self._similarity = class_text.class_similarity(self.info, self.config.eval.similarity)
        return self._similarity

    def evaluate(
        self, state, workdir: str | os.PathLike, *, wall_time_s: float | None = None
    ) -> dict:
        """Encode the evaluation data with ``state``, rank and score, write the step's report.

        Returns the report (schema in the module docstring), also written to
        ``report_dir(workdir, state.step) / "report.json"`` by process 0.
        """
        from jaxhash import evaluate

        config, info = self.config, self.info
        step = int(state.step)
        variables = {"params": state.params, "batch_stats": state.batch_stats}
        split = config.eval.split or info.eval_split
        z, labels, ids, embeddings = self.encode(variables, split)
        similarity = self.class_similarity()
        if info.has_captions:
            if config.eval.protocol != "database_is_query":
                raise ValueError("caption data supports config.eval.protocol='database_is_query'.")
            labels, similarity = caption_targets(embeddings)
        query = {}
        if config.eval.protocol == "query_database":
            if not config.eval.query_split:
                raise ValueError(
                    "config.eval.protocol='query_database' needs config.eval.query_split."
                )
            query_z, query_labels, query_ids, _ = self.encode(variables, config.eval.query_split)
            query = dict(query_codes=query_z, query_labels=query_labels)
        report = evaluate.evaluate(
            z,
            labels,
            protocol=config.eval.protocol,
            held_out_classes=list(info.holdout_labels) or None,
            class_similarity=similarity,
            class_distance=None if similarity is None else 1.0 - similarity,
            map_k=int(config.eval.map_k),
            mahp_k=int(config.eval.mahp_k),
            ties=config.eval.ties,
            rankings=tuple(config.eval.rankings),
            baseline=bool(config.eval.baseline),
            seed=int(config.seed),
            mesh=process_mesh(self.mesh),
            axis_name=DATA_AXIS,
            **query,
        )
        rows = report["rows"]
        if info.has_captions:  # no classes: only the graded (caption-similarity) metrics apply
            for row in rows.values():
                row["summary"] = {
                    k: v
                    for k, v in row["summary"].items()
                    if k.startswith("mAHP") or k == "mistake_severity"
                }
            report["note"] = (
                "caption data: each image is its own class; mAHP@k uses max(cos, 0) of the "
                "caption embeddings as graded relevance and mistake_severity is the mean caption "
                "distance of the top-1 item (lower is better); label metrics (mAP, P@k) do not "
                "apply."
            )
        report["step"] = step
        report["metrics"] = rows["hamming"]["summary"] if "hamming" in rows else {}
        report["wall_time_s"] = wall_time_s
        report["config"] = json.loads(config.to_json_best_effort())
        if jax.process_index() == 0:
            views = {"database": (split, z, labels, ids)}
            if query:
                views["query"] = (config.eval.query_split, query_z, query_labels, query_ids)
            grid = self.retrieval_grid(views, similarity)
            evaluate.write_report(report, report_dir(workdir, step), grid)
        return report

    def retrieval_grid(self, views: dict, similarity) -> RetrievalGrid:
        """The evaluation's retrieval grid (:mod:`jaxhash.retrieval_grid`): 8 queries (seeded
        by ``config.seed``, spread over the classes), each with its 8 nearest database items.

        ``views``: ``{"database": (split, z, labels, ids)}`` and, for a separate query set,
        ``"query"`` likewise; zero-shot keeps the held-out classes, as the metrics do.
        Pixels are the evaluation crops, read back by example id
        (:func:`jaxhash.data.views.example_pixels`).
        """
        from jaxhash.data.views import example_pixels
        from jaxhash.evaluate import held_out_mask

        config, info = self.config, self.info
        db_split, db_z, db_labels, db_ids = views["database"]
        q_split, q_z, q_labels, q_ids = views.get("query", views["database"])
        exclude_self = "query" not in views
        if config.eval.protocol == "zero_shot" and not info.has_captions:
            keep = held_out_mask(db_labels, info.holdout_labels)
            db_z, db_labels, db_ids = db_z[keep], db_labels[keep], db_ids[keep]
            if exclude_self:
                q_z, q_labels, q_ids = db_z, db_labels, db_ids
            else:
                keep = held_out_mask(q_labels, info.holdout_labels)
                q_z, q_labels, q_ids = q_z[keep], q_labels[keep], q_ids[keep]
        if info.has_captions:  # every image its own "class" (caption_targets)
            q_labels = db_labels = np.arange(len(db_ids))

            def names(label: int) -> str:
                return f"image {int(db_ids[label])}"

            colour_label = "caption distance to the query's captions (1 - max(cos, 0))"
        else:

            def names(label: int) -> str:
                return info.class_names[label]

            colour_label = (
                f"hierarchy distance to the query's class (1 - {config.eval.similarity} "
                "similarity; 0 = same class)"
            )
        rows = evaluation_grid(
            q_z,
            db_z,
            q_labels,
            db_labels,
            query_pixels=lambda rows: example_pixels(config, q_split, q_ids[rows]),
            db_pixels=lambda rows: example_pixels(config, db_split, db_ids[rows]),
            names=names,
            class_distance=None if similarity is None else 1.0 - similarity,
            exclude_self=exclude_self,
            seed=int(config.seed),
        )
        note = None
        if similarity is None:
            colour_label = None
            note = "frames not coloured: this data set has no class hierarchy"
        return RetrievalGrid(rows, colour_label, note)


def encode_split(config, model, variables, mesh: Mesh, split: str, subset: str = "all"):
    """:meth:`Evaluator.encode` of a one-off evaluator (``config`` validated)."""
    return Evaluator(config, None, model, mesh).encode(variables, split, subset)


def evaluate_state(
    config,
    info,
    model,
    state,
    mesh: Mesh,
    workdir: str | os.PathLike,
    *,
    wall_time_s: float | None = None,
) -> dict:
    """:meth:`Evaluator.evaluate` of a one-off evaluator (``config`` validated)."""
    return Evaluator(config, info, model, mesh).evaluate(state, workdir, wall_time_s=wall_time_s)
