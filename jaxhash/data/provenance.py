"""What a prepared data set was built from, recorded beside TFDS's files.

When jaxhash prepares a data set it writes ``jaxhash_provenance.json`` into the prepared
folder (``<data_dir>/<builder>/<config>/<version>/``, next to ``dataset_info.json``): the
source (a file and its sha256, a TFDS download, or the generator's settings), the examples
per split, whether the splits have the official full sizes, and when it was built. A run
that asks for a data set without naming its source (``cifar100`` without ``manual_dir``)
reuses a prepared folder only when this record says it is the full data set
(:mod:`jaxhash.data.datasets.cifar100`), and the console says what was used.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FILE_NAME = "jaxhash_provenance.json"

log = logging.getLogger(__name__)


def split_sizes(builder) -> dict[str, int]:
    """Examples per split of a prepared TFDS builder."""
    return {name: int(split.num_examples) for name, split in builder.info.splits.items()}


def record(builder, *, full_sizes: Mapping[str, int] | None = None, **facts: Any) -> dict:
    """Write the provenance of ``builder``'s prepared folder and return it.

    ``facts``: what it was built from (``source``, ``sha256``, ...). ``full_sizes``: the
    official split sizes of the data set; ``full`` records whether the prepared splits have
    them (None: the data set has no fixed size).
    """
    sizes = split_sizes(builder)
    facts = {
        "builder": builder.name,
        "config": builder.builder_config.name if builder.builder_config else None,
        **facts,
        "splits": sizes,
        "full": None if full_sizes is None else sizes == dict(full_sizes),
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    folder = Path(builder.data_dir)
    if not folder.is_dir():  # nothing prepared there (e.g. under tfds.testing.mock_data)
        return facts
    try:
        (folder / FILE_NAME).write_text(json.dumps(facts, indent=1) + "\n")
    except OSError as err:  # e.g. a read-only shared data folder: the data is still usable
        log.warning("could not record the provenance of %s: %s", folder, err)
    return facts


def read(folder: str | Path) -> dict | None:
    """The provenance recorded in a prepared folder; None when there is none (prepared by
    TFDS itself or by an earlier jaxhash) or it cannot be read."""
    path = Path(folder, FILE_NAME)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def describe(facts: Mapping | None, sizes: Mapping[str, int] | None = None) -> str:
    """``"500 train / 600 test examples, a subset of the official 50,000 / 10,000, from
    x.npz (sha256 1a2b3c4d5e6f)"``: one clause for the console."""
    facts = dict(facts or {})
    sizes = dict(sizes or facts.get("splits") or {})
    text = " / ".join(f"{n:,} {split}" for split, n in sizes.items()) + " examples"
    official = facts.get("official_sizes")
    if facts.get("full") is False and official:
        text += ", a subset of the official " + " / ".join(f"{n:,}" for n in official.values())
    if facts.get("source"):
        text += f", from {facts['source']}"
    if facts.get("sha256"):
        text += f" (sha256 {facts['sha256'][:12]}"
        text += ", the official archive)" if facts.get("official_archive") else ")"
    return text
