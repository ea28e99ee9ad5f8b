"""WordNet through nltk: loading it offline with clear errors, and resolving class names.

WordNet 3.0 is the hierarchy of the paper's semantic targets (docs/method.md, section 4). ImageNet
class ids are WordNet noun offsets (``n02084071`` is ``dog.n.01``).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence

from jaxhash.semantics.errors import HierarchyError

_WNID = re.compile(r"^n\d{8}$")

INSTALL_HELP = """\
WordNet 3.0 for nltk was not found. Install it one of these ways, then retry:
  * with internet:     python -m nltk.downloader wordnet
  * without internet, from Debian packages:
      apt-get install -y --no-install-recommends wordnet-base wordnet-sense-index
      then copy (not link) /usr/share/wordnet/* into DIR/corpora/wordnet/, add the file
      'lexnames' (nltk needs it; Debian lacks it), and export NLTK_DATA=DIR
  * from a folder that holds corpora/wordnet.zip or corpora/wordnet/:
      export NLTK_DATA=DIR, or pass data_dir=DIR
Searched: {paths}"""


def load_wordnet(data_dir: str | os.PathLike | None = None):
    """The nltk WordNet reader, loaded; ``data_dir`` (a folder holding ``corpora/wordnet``) is
    searched first. Raises :class:`HierarchyError` saying how to install WordNet if absent."""
    try:
        import nltk
        from nltk.corpus import wordnet
    except ImportError as err:  # pragma: no cover - nltk is a core dependency
        raise HierarchyError("nltk is not installed: pip install nltk") from err
    if data_dir is not None:
        data_dir = os.fspath(data_dir)
        if data_dir not in nltk.data.path:
            nltk.data.path.insert(0, data_dir)
    try:
        wordnet.ensure_loaded()
    except LookupError:
        raise HierarchyError(INSTALL_HELP.format(paths=", ".join(nltk.data.path))) from None
    return wordnet


def resolve_synsets(items: Sequence, wordnet=None) -> list:
    """nltk noun Synsets for synset names (``"tiger.n.02"``), WordNet ids (``"n02129604"``)
    or Synsets; one error lists every item that does not resolve."""
    wn = wordnet if wordnet is not None else load_wordnet()
    resolved, unknown = [], []
    for item in items:
        if hasattr(item, "name") and hasattr(item, "pos"):
            synset = item
        else:
            text = str(item)
            try:
                with warnings.catch_warnings():  # nltk warns, then returns None, on bad offsets
                    warnings.simplefilter("ignore")
                    if _WNID.match(text):
                        synset = wn.synset_from_pos_and_offset("n", int(text[1:]))
                    else:
                        synset = wn.synset(text)
            except Exception:  # nltk raises WordNetError, ValueError or others per case
                synset = None
            if synset is None:
                unknown.append(text)
                continue
        if synset.pos() != "n":
            unknown.append(f"{synset.name()} (not a noun)")
            continue
        resolved.append(synset)
    if unknown:
        raise HierarchyError(
            f"{len(unknown)} item(s) are not WordNet 3.0 noun synsets: {unknown[:20]}"
            f"{' ...' if len(unknown) > 20 else ''}. Use names like 'tiger.n.02' or ImageNet "
            "ids like 'n02129604'; list the senses with wn.synsets('tiger', 'n')."
        )
    return resolved


def wnid(synset) -> str:
    """The ImageNet-style id of a noun synset: ``'n%08d' % offset``."""
    return f"n{synset.offset():08d}"
