"""Fixtures of the text tests: the reference sentences and the packaged encoder."""

import json

import numpy as np
import pytest

from jaxhash.semantics import text
from jaxhash.semantics.text import SentenceEncoder
from tests.semantics.text.text_extra import FIXTURE, missing_extra


@pytest.fixture(scope="module")
def fixture():
    with np.load(FIXTURE, allow_pickle=False) as z:
        return {
            "sentences": [str(s) for s in z["sentences"]],
            "embeddings": z["embeddings"],
            "info": json.loads(str(z["info"])),
        }


@pytest.fixture(scope="module")
def encoder():
    if missing_extra():
        pytest.skip(f"optional extra 'text' not installed: {text.INSTALL_HINT}")
    return SentenceEncoder.load()


@pytest.fixture(scope="module")
def fixture_output(encoder, fixture):
    return encoder.embed(fixture["sentences"], batch_size=32)
