"""Kinds of config values that one plain type cannot describe: optional values, paths, fixed-length
number tuples, intervals, class lists and the augmentation switch.

A field of the table (:mod:`jaxhash.config.fields`) either takes the plain type of its default
(bool, int, float, str or list, checked by :mod:`jaxhash.config.validation`) or names one of the
kinds here. A kind's ``check(key, value)`` returns the value normalised (tuples, floats, plain
paths: what the input pipeline's frozen view stores) or raises a ValueError naming the key, what it
must be and what it got.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

AUGMENT_STYLES = ("auto", "none", "crop_flip", "resized_crop_flip")


@dataclasses.dataclass(frozen=True)
class Kind:
    """What a field accepts: ``description`` for the reference, ``check`` for the values."""

    description: str
    check: Callable[[str, Any], Any]


def _fail(key: str, expected: str, value) -> None:
    """The one error of a value outside its kind: key, expectation, value and its type."""
    raise ValueError(
        f"config key {key!r} must be {expected}; got {value!r} ({type(value).__name__})."
    )


def _optional_int(key, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key, "an int or None", value)
    return int(value)


def _path(key, value):
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not str(value):
        _fail(key, "a non-empty string or None", value)
    return os.fspath(value)


def _optional_flag(key, value):
    if not isinstance(value, bool) and value is not None:
        _fail(key, "True, False or None (automatic)", value)
    return value


def _numbers(key, value, length: int, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != length:
        _fail(key, f"a sequence of {length} numbers" + (" or None" if optional else ""), value)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        _fail(key, f"a sequence of {length} numbers", value)
    return tuple(float(v) for v in value)


def _positive_numbers(key, value):
    value = _numbers(key, value, 3, optional=True)
    if value is not None and min(value) <= 0:
        _fail(key, "three positive numbers", value)
    return value


def _names(key, value):
    if isinstance(value, str) or not isinstance(value, Sequence):
        _fail(key, "a list of class names", value)
    names = tuple(str(v) for v in value)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"config key {key!r} lists classes more than once: {repeated}.")
    return names


def _class_subset(key, value):
    if value is None or value == "imagenet100":
        return value
    names = _names(key, value)
    if not names:
        _fail(key, "None, 'imagenet100' or a non-empty list of class names", value)
    return names


def _augment(key, value):
    if not isinstance(value, bool) and value not in AUGMENT_STYLES:
        _fail(key, f"True, False or one of {AUGMENT_STYLES}", value)
    return value


def fraction(*, optional: bool, closed_low: bool) -> Kind:
    """A number in ``(0, 1]`` (``[0, 1)`` with ``closed_low``), as a float; None if ``optional``."""
    bounds = "[0, 1)" if closed_low else "(0, 1]"
    expected = f"a number in {bounds}" + (" or None" if optional else "")

    def check(key, value):
        if value is None and optional:
            return None
        inside = isinstance(value, int | float) and not isinstance(value, bool)
        if inside:
            inside = 0 <= value < 1 if closed_low else 0 < value <= 1
        if not inside:
            _fail(key, expected, value)
        return float(value)

    return Kind(expected, check)


def interval(*, at_most: float | None = None) -> Kind:
    """A pair ``(low, high)`` with ``0 < low <= high`` (and ``high <= at_most``), as floats."""
    bound = f" <= {at_most:g}" if at_most is not None else ""
    expected = f"(low, high) with 0 < low <= high{bound}"

    def check(key, value):
        low, high = _numbers(key, value, 2)
        if not 0 < low <= high or (at_most is not None and high > at_most):
            _fail(key, expected, value)
        return low, high

    return Kind(expected, check)


OPTIONAL_INT = Kind("an int or None", _optional_int)
PATH = Kind("a non-empty string or None", _path)
OPTIONAL_FLAG = Kind("True, False or None (automatic)", _optional_flag)
RGB = Kind("a sequence of 3 numbers or None", lambda k, v: _numbers(k, v, 3, optional=True))
POSITIVE_RGB = Kind("three positive numbers or None", _positive_numbers)
CLASS_NAMES = Kind("a list of class names, each once", lambda k, v: _names(k, v or ()))
CLASS_SUBSET = Kind("None, 'imagenet100' or a non-empty list of class names", _class_subset)
AUGMENT = Kind(f"True, False or one of {AUGMENT_STYLES}", _augment)
