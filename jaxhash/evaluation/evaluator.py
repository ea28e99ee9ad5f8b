"""A trained model evaluated on its run's data: encode once, rank once, one report per step.

:class:`Evaluator` is built once per run (``jaxhash.train.run`` and ``jaxhash evaluate``). It
holds the model's encoder, jitted on the first evaluation and reused by every later one (the
periodic ones and the last), and the data set's relevance (:mod:`.relevance`: classes with
their similarity table, or captions), made once. Each :meth:`Evaluator.evaluate` goes down
the floors of :mod:`jaxhash.evaluation`: it encodes the evaluation split with a state
(:mod:`.encoding`), ranks the codes once per ranking and scores every metric from that
ranking (:func:`.protocols.evaluate`), and writes one report,
``workdir/eval/step_<N>/report.json``, with its pictures beside it (:mod:`.report`):
``pr_curve.png``, ``hp_at_k.png`` and ``retrieval_grid.png`` (:meth:`Evaluator.retrieval_grid`).
The report's schema is :func:`.protocols.evaluate`'s (protocol, counts, settings, one entry per
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

import jax
from jax.sharding import Mesh

from jaxhash import test_time_augmentation
from jaxhash.evaluation import encoding, protocols
from jaxhash.evaluation.relevance import Relevance, relevance_of
from jaxhash.evaluation.report import report_dir, write_report
from jaxhash.evaluation.retrieval_grid import RetrievalGrid, evaluation_grid
from jaxhash.parallel import DATA_AXIS, process_mesh


class Evaluator:
    """The evaluation of one run: its config, data info, model and mesh, and the encoder.

    ``info`` (a ``jaxhash.data.DatasetInfo``) may be None for :meth:`encode` alone.
    """

    def __init__(self, config, info, model, mesh: Mesh):
        self.config, self.info, self.model, self.mesh = config, info, model, mesh
        self._relevance: Relevance | None = None  # made on first use (a similarity table)

        # One function object: encoding.encode compiles it once.
        self._z = test_time_augmentation.encoder(model, config.eval.tta)

    def encode(self, variables, split: str, subset: str = "all"):
        """z ``[N, K]``, labels, example ids and caption embeddings of ``split``
        (:func:`jaxhash.evaluation.encoding.encode_split`)."""
        return encoding.encode_split(self._z, variables, self.config, self.mesh, split, subset)

    @property
    def relevance(self) -> Relevance:
        """What counts as relevant for this data set (:func:`.relevance.relevance_of`)."""
        if self._relevance is None:
            self._relevance = relevance_of(self.info, self.config)
        return self._relevance

    def evaluate(
        self, state, workdir: str | os.PathLike, *, wall_time_s: float | None = None
    ) -> dict:
        """Encode the evaluation data with ``state``, rank and score, write the step's report.

        ``state``: what holds the model's ``variables`` and its ``step`` (a
        ``jaxhash.state.TrainState`` or an opened run, ``jaxhash.run_folder.TrainedRun``).
        Returns the report (schema in the module docstring), also written to
        ``report_dir(workdir, state.step) / "report.json"`` by process 0.
        """
        config, info, relevance = self.config, self.info, self.relevance
        step = int(state.step)
        variables = state.variables
        split = config.eval.split or info.eval_split
        relevance.check(config.eval.protocol)
        z, labels, ids, embeddings = self.encode(variables, split)
        labels, similarity = relevance.targets(labels, embeddings)
        query = {}
        if config.eval.protocol == "query_database":
            if not config.eval.query_split:
                raise ValueError(
                    "config.eval.protocol='query_database' needs config.eval.query_split."
                )
            query_z, query_labels, query_ids, _ = self.encode(variables, config.eval.query_split)
            query = dict(query_codes=query_z, query_labels=query_labels)
        report = protocols.evaluate(
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
        for row in rows.values():
            row["summary"] = relevance.summary(row["summary"])
        if relevance.note:
            report["note"] = relevance.note
        report["step"] = step
        report["metrics"] = rows["hamming"]["summary"] if "hamming" in rows else {}
        report["wall_time_s"] = wall_time_s
        report["config"] = json.loads(config.to_json_best_effort())
        if jax.process_index() == 0:
            views = {"database": (split, z, labels, ids)}
            if query:
                views["query"] = (config.eval.query_split, query_z, query_labels, query_ids)
            grid = self.retrieval_grid(views, similarity)
            write_report(report, report_dir(workdir, step), grid)
        return report

    def retrieval_grid(self, views: dict, similarity) -> RetrievalGrid:
        """The evaluation's retrieval grid (:mod:`.retrieval_grid`): 8 queries (seeded by
        ``config.seed``, spread over the classes), each with its 8 nearest database items.

        ``views``: ``{"database": (split, z, labels, ids)}`` and, for a separate query set,
        ``"query"`` likewise, labels as scored (:meth:`.relevance.ClassRelevance.targets`);
        zero-shot keeps the held-out classes, as the metrics do. Pixels are the evaluation
        crops, read back by example id (:func:`jaxhash.data.views.example_pixels`); names and
        frame colours come from the relevance.
        """
        from jaxhash.data.views import example_pixels

        config, info, relevance = self.config, self.info, self.relevance
        db_split, db_z, db_labels, db_ids = views["database"]
        q_split, q_z, q_labels, q_ids = views.get("query", views["database"])
        exclude_self = "query" not in views
        if config.eval.protocol == "zero_shot":
            keep = protocols.held_out_mask(db_labels, info.holdout_labels)
            db_z, db_labels, db_ids = db_z[keep], db_labels[keep], db_ids[keep]
            if exclude_self:
                q_z, q_labels, q_ids = db_z, db_labels, db_ids
            else:
                keep = protocols.held_out_mask(q_labels, info.holdout_labels)
                q_z, q_labels, q_ids = q_z[keep], q_labels[keep], q_ids[keep]
        rows = evaluation_grid(
            q_z,
            db_z,
            q_labels,
            db_labels,
            query_pixels=lambda rows: example_pixels(config, q_split, q_ids[rows]),
            db_pixels=lambda rows: example_pixels(config, db_split, db_ids[rows]),
            names=lambda label: relevance.name(label, db_ids),
            class_distance=None if similarity is None else 1.0 - similarity,
            exclude_self=exclude_self,
            seed=int(config.seed),
        )
        if similarity is None:
            return RetrievalGrid(
                rows, None, "frames not coloured: this data set has no class hierarchy"
            )
        return RetrievalGrid(rows, relevance.colour_label, None)


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


__all__ = ["Evaluator", "encode_split", "evaluate_state"]
