"""Evaluation of hash codes: from a train state to a report with pictures.

The floors, each a module, each using only those below it::

    evaluator.py       Evaluator: a run's model and data set; encode, score, report per step
    encoding.py        encode / encode_split: a model's outputs z over sharded batches
    relevance.py       what is relevant: ClassRelevance (class similarity) or CaptionRelevance
    protocols.py       evaluate / evaluate_codes: protocols and every metric from one ranking
    report.py          write_report: report.json, pr_curve.png, hp_at_k.png
    retrieval_grid.py  the retrieval grid picture: queries and their nearest database items

``jaxhash.evaluate``, ``jaxhash.model_eval`` and ``jaxhash.retrieval_grid`` keep their names
importable from these modules.
"""

from jaxhash.evaluation.encoding import encode, encode_split
from jaxhash.evaluation.evaluator import Evaluator
from jaxhash.evaluation.protocols import PROTOCOLS, evaluate, evaluate_codes, held_out_mask
from jaxhash.evaluation.relevance import CaptionRelevance, ClassRelevance, relevance_of
from jaxhash.evaluation.report import report_dir, write_report
from jaxhash.evaluation.retrieval_grid import RetrievalGrid

__all__ = [
    "PROTOCOLS",
    "CaptionRelevance",
    "ClassRelevance",
    "Evaluator",
    "RetrievalGrid",
    "encode",
    "encode_split",
    "evaluate",
    "evaluate_codes",
    "held_out_mask",
    "relevance_of",
    "report_dir",
    "write_report",
]
