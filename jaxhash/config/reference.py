"""The reference page of every config field, ``docs/config.md``, generated from the field table
(:data:`jaxhash.config.fields.FIELDS`) so that it cannot drift from the code::

    python -m jaxhash.config.reference > docs/config.md
"""

from __future__ import annotations

import re
import sys

from jaxhash.config.fields import BLOCKS, FIELDS, UNCHANGED, Field

_HEADER = """\
# Config reference

Every field of a jaxhash config: its default, what it accepts and what it does. An experiment
file (`configs/*.py`) returns `jaxhash.config.default_config()` with a few fields changed;
`jaxhash train --set key.path=value` changes one more (the value a Python literal, else a
string). A field marked *resume* may change when a rerun resumes a run folder's checkpoint; any
other change stops the rerun unless `--allow-config-change` is given.

Generated from the table in `jaxhash/config/fields.py`
(`python -m jaxhash.config.reference > docs/config.md`); do not edit by hand.
"""


def _literal(value) -> str:
    """A default as a Python literal, floats to 6 significant digits."""
    if isinstance(value, float):
        return repr(float(f"{value:.6g}"))
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def accepts(field: Field) -> str:
    """What ``field`` accepts, in words: its kind, or its type with choices and bounds."""
    if field.kind is not None:
        text = field.kind.description
    elif field.choices is not None:
        text = "one of " + ", ".join(f"`{choice!r}`" for choice in field.choices)
    else:
        text = type(field.default).__name__
    bounds = [
        f"{sign} {value:g}"
        for sign, value in (
            (">=", field.minimum),
            (">", field.exclusive_minimum),
            ("<", field.exclusive_maximum),
        )
        if value is not None
    ]
    return text + (", " + " and ".join(bounds) if bounds else "")


def _cell(text: str) -> str:
    """``text`` safe in a Markdown table cell: no column breaks, nothing read as an HTML tag."""
    return re.sub(r"<(?=[A-Za-z/])", "&lt;", text.replace("|", "\\|"))


def reference_markdown() -> str:
    """The page: one table per block, one row per field, in the table's order."""
    lines = [_HEADER]
    for block, about in BLOCKS.items():
        lines += [f"## {f'`{block}`' if block else 'Top level'}: {about}", ""]
        lines += ["| field | default | accepts | resume | what it does |", "|---|---|---|---|---|"]
        for field in FIELDS:
            if field.block != block:
                continue
            doc = field.doc
            if field.former_default is not UNCHANGED:
                doc += f" (runs saved before it existed: {_literal(field.former_default)})"
            row = (
                f"`{field.name}`",
                f"`{_literal(field.default)}`",
                accepts(field),
                "resume" if field.resumable else "",
                doc,
            )
            lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
