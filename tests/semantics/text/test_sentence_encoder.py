"""The sentence encoder (jaxhash.semantics.text.encoder) against sentence-transformers: the
embeddings, tokenisation, batching, the cache as the encoder uses it, pass shapes and errors.
"""

import numpy as np
import pytest

from jaxhash.semantics.text import SentenceEncoder
from tests.semantics.text.text_extra import TOLERANCE, needs_model


@needs_model
def test_matches_sentence_transformers(fixture, fixture_output):
    assert fixture_output.shape == (len(fixture["sentences"]), 384)
    assert fixture_output.dtype == np.float32
    error = np.abs(fixture_output - fixture["embeddings"]).max()
    assert error < TOLERANCE, f"max abs difference {error:.2e} vs sentence-transformers"


@needs_model
def test_fixture_covers_truncation_and_edge_cases(encoder, fixture):
    counts = [len(ids) for ids in encoder.tokenize(fixture["sentences"])]
    # Our tokenizer agrees with sentence-transformers' on every length, including a sentence
    # past tokenizer.json's own 128-token truncation and one truncated at max_seq_length 256.
    assert counts == fixture["info"]["token_counts"]
    assert max(counts) == 256 and any(128 < n < 256 for n in counts)
    assert "" in fixture["sentences"] and any(
        ord(c) > 0x3000 for c in "".join(fixture["sentences"])
    )


@needs_model
def test_unit_norm(fixture_output):
    np.testing.assert_allclose(np.linalg.norm(fixture_output, axis=1), 1.0, rtol=0, atol=1e-6)


@needs_model
def test_batch_size_and_order_do_not_matter(encoder, fixture, fixture_output):
    sentences = fixture["sentences"]
    perm = np.random.default_rng(0).permutation(len(sentences))
    shuffled = encoder.embed([sentences[i] for i in perm], batch_size=5)
    np.testing.assert_allclose(shuffled, fixture_output[perm], rtol=0, atol=1e-6)
    # Repeats inside one call give identical rows.
    repeated = encoder.embed([sentences[0], sentences[14], sentences[0]], batch_size=5)
    np.testing.assert_array_equal(repeated[0], repeated[2])
    np.testing.assert_allclose(repeated[:2], fixture_output[[0, 14]], rtol=0, atol=1e-6)


@needs_model
def test_empty_input(encoder):
    out = encoder.embed([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def _count_passes(encoder, monkeypatch) -> list[int]:
    """Wrap the model call; returns a list that grows by each pass's sentence count."""
    calls: list[int] = []
    original = encoder._run_pass

    def counting(input_ids, segment_ids, positions, num_segments):
        calls.append(sum(len(np.unique(row[row > 0])) for row in segment_ids))
        return original(input_ids, segment_ids, positions, num_segments)

    monkeypatch.setattr(encoder, "_run_pass", counting)
    return calls


@needs_model
def test_cache_hit_skips_the_model(encoder, fixture, tmp_path, monkeypatch):
    calls = _count_passes(encoder, monkeypatch)
    captions = fixture["sentences"][14:20]
    first = encoder.embed(captions, batch_size=5, cache_dir=tmp_path)
    assert calls, "the first call must run the model"
    np.testing.assert_allclose(first, fixture["embeddings"][14:20], rtol=0, atol=TOLERANCE)
    files = sorted(tmp_path.rglob("*.npy"))
    assert len(files) == len(captions)
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"

    calls.clear()
    again = encoder.embed(captions[::-1], batch_size=5, cache_dir=tmp_path)
    assert calls == [], "a cache hit must not run the model"
    np.testing.assert_array_equal(again, first[::-1])

    # A new model (another process) reads the same cache.
    fresh = SentenceEncoder.load()
    assert fresh.cache_key(captions[0]) == encoder.cache_key(captions[0])

    # Partly cached: only the new sentence is embedded; a corrupt file is recomputed.
    files[0].write_bytes(files[0].read_bytes()[:40])
    calls.clear()
    mixed = encoder.embed([*captions, fixture["sentences"][20]], batch_size=5, cache_dir=tmp_path)
    assert sum(calls) == 2, f"expected 2 sentences embedded (1 new, 1 corrupt); got {calls}"
    np.testing.assert_allclose(mixed[:-1], first, rtol=0, atol=1e-6)
    np.testing.assert_allclose(mixed[-1], fixture["embeddings"][20], rtol=0, atol=TOLERANCE)


@needs_model
def test_cache_key_depends_on_text_and_max_length(encoder):
    keys = {encoder.cache_key(s) for s in ("a dog", "a dog ", "A dog", "")}
    assert len(keys) == 4
    other = SentenceEncoder(
        encoder.params, encoder.tokenizer, encoder.config, max_length=128, model_id=encoder.model_id
    )
    assert other.cache_key("a dog") != encoder.cache_key("a dog")


@needs_model
def test_fixed_shapes_match_bucketed(encoder, fixture, fixture_output, monkeypatch):
    """shapes="fixed" runs every pass in one shape and gives the bucketed embeddings to 1e-6;
    "auto" is bucketed on the CPU."""
    assert encoder.shapes == "bucketed"
    fixed = SentenceEncoder(
        encoder.params,
        encoder.tokenizer,
        encoder.config,
        max_length=encoder.max_length,
        model_id=encoder.model_id,
        pad_id=encoder.pad_id,
        shapes="fixed",
    )
    shapes = set()
    run_pass = fixed._run_pass

    def recording(input_ids, segment_ids, positions, num_segments):
        shapes.add((input_ids.shape, num_segments))
        return run_pass(input_ids, segment_ids, positions, num_segments)

    monkeypatch.setattr(fixed, "_run_pass", recording)
    sentences = fixture["sentences"]
    out = fixed.embed(sentences, batch_size=1)  # rows of max_length tokens, one per pass
    assert shapes == {((1, encoder.max_length), encoder.max_length // 2)}
    np.testing.assert_allclose(out, fixture_output, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="shapes must be one of"):
        SentenceEncoder(
            encoder.params,
            encoder.tokenizer,
            encoder.config,
            max_length=8,
            model_id="m",
            shapes="static",
        )


@needs_model
@pytest.mark.parametrize(
    ("sentences", "match"),
    [
        (["a dog", 3, "a cat"], r"sentences\[1\] must be a str; got int"),
        (["a dog", None], r"sentences\[1\] must be a str; got NoneType"),
        ([b"bytes"], r"sentences\[0\] must be a str; got bytes"),
        ("a single string", "not a single str"),
        (42, "sequence of str"),
    ],
)
def test_bad_sentences(encoder, sentences, match):
    with pytest.raises(ValueError, match=match):
        encoder.embed(sentences)


@needs_model
def test_bad_arguments(encoder):
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        encoder.embed(["a"], batch_size=0)
    with pytest.raises(ValueError, match=r"max_length must lie in \[2, 512\]"):
        SentenceEncoder.load(max_length=513)
