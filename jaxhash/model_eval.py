"""The evaluator of a run: moved to :mod:`jaxhash.evaluation.evaluator`; these names stay
importable from here."""

from jaxhash.evaluation.evaluator import Evaluator, encode_split, evaluate_state
from jaxhash.evaluation.relevance import caption_targets
from jaxhash.evaluation.report import report_dir

__all__ = ["Evaluator", "caption_targets", "encode_split", "evaluate_state", "report_dir"]
