"""Evaluation protocols and the report: moved to :mod:`jaxhash.evaluation` (``protocols``,
``report``); these names stay importable from here."""

from jaxhash.evaluation.protocols import (
    PROTOCOLS,
    evaluate,
    evaluate_codes,
    held_out_mask,
    random_codes,
)
from jaxhash.evaluation.report import write_report

__all__ = [
    "PROTOCOLS",
    "evaluate",
    "evaluate_codes",
    "held_out_mask",
    "random_codes",
    "write_report",
]
