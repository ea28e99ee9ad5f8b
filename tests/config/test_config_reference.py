"""The documentation of the config agrees with the field table: ``docs/config.md`` is generated
from it, every config key that README.md and docs/ name is a field, and every name the
repository imports from ``jaxhash.config`` is still there."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import jaxhash.config
from jaxhash.config import reference
from jaxhash.config.fields import BLOCKS, BY_NAME

ROOT = Path(__file__).resolve().parents[2]


def test_reference_page_is_generated_from_the_table():
    page = (ROOT / "docs" / "config.md").read_text()
    assert page == reference.reference_markdown(), (
        "docs/config.md is out of date: python -m jaxhash.config.reference > docs/config.md"
    )
    for name in BY_NAME:
        assert f"| `{name}` |" in page


def _docs() -> dict[str, str]:
    texts = {"README.md": (ROOT / "README.md").read_text()}
    for path in sorted((ROOT / "docs").glob("*.md")):
        texts[f"docs/{path.name}"] = path.read_text()
    return texts


def test_config_keys_named_in_the_docs_are_fields():
    """A key in a code span (`model.bits = 32`, `--set data.flip=...`), not a call, a path or a
    WordNet synset (`train.n.01`)."""
    blocks = "|".join(block for block in BLOCKS if block)
    key = re.compile(rf"(?<![\w./-])(?:{blocks})\.[a-z_]\w*(?![\w(/.])")
    named = {
        (doc, match.group(0))
        for doc, text in _docs().items()
        for span in re.findall(r"`([^`\n]+)`", text)
        for match in key.finditer(span)
    }
    assert any(doc == "README.md" for doc, _ in named)  # the pattern finds README's keys
    assert {(doc, k) for doc, k in named if k not in BY_NAME} == set()


def _imported_names() -> set[str]:
    """Names taken from ``jaxhash.config`` in the repository's code, notebook and docs."""
    folders = ("jaxhash", "configs", "studies", "benchmarks", "tests", "examples")
    paths = [p for folder in folders for p in (ROOT / folder).glob("**/*.py")]
    texts = [p.read_text() for p in paths if "jaxhash/config/" not in p.as_posix()]
    texts += [t for t in _docs().values()]
    for path in ROOT.glob("examples/*.ipynb"):
        notebook = json.loads(path.read_text())
        texts += ["".join(cell["source"]) for cell in notebook["cells"]]
    names = set()
    for text in texts:
        imports = re.findall(r"from jaxhash\.config import (?:\(([^)]*)\)|([\w ,]+))", text)
        for group in (a or b for a, b in imports):
            names |= {n.strip() for n in group.split(",") if n.strip()}
        names |= set(re.findall(r"\bconfig_lib\.([A-Za-z_]\w*)", text))
        names |= set(re.findall(r"\bjaxhash\.config\.([A-Za-z_]\w*)\b(?!\.py)", text))
    return {name for name in names if not name.startswith("__")}


def test_names_used_from_jaxhash_config_are_there():
    names = _imported_names()
    assert {"default_config", "validate_config", "apply_overrides"} <= names
    missing = sorted(n for n in names if not hasattr(jaxhash.config, n))
    assert missing == []
    exported = {n for n in names if not inspect.ismodule(getattr(jaxhash.config, n))}
    assert exported <= set(jaxhash.config.__all__)
