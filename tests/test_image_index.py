"""jaxhash.image_index and ``jaxhash index`` / ``jaxhash query``: folders of image files
(random pixels, several sizes and formats) indexed with a briefly trained quick demo run."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
from PIL import Image

from jaxhash import cli, image_index, retrieval
from jaxhash.search import faiss as faiss_bridge


@pytest.fixture(scope="module")
def run_dir(quick_run):
    """The shared quick run (3 steps, no evaluation)."""
    return quick_run[0]


@pytest.fixture(scope="module")
def encoder(run_dir):
    return image_index.Encoder(run_dir)


def _images(folder):
    """Six readable images of different sizes, modes and formats (two in a subfolder), one
    broken file and one text file."""
    rng = np.random.default_rng(0)
    shapes = [(40, 60, 3), (100, 80, 3), (32, 32, 3), (200, 150, 4), (64, 64, 0), (50, 120, 3)]
    for i, shape in enumerate(shapes):
        pixels = rng.integers(0, 256, shape if shape[2] else shape[:2], np.uint8)
        target = folder / "sub" if i >= 4 else folder
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(
            target / f"img{i}.{'png' if i % 2 or shape[2] == 4 else 'JPG'}"
        )
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not an image either")
    return folder


@pytest.mark.slow
def test_index_and_query_from_the_command_line(
    run_dir, encoder, tmp_path, capsys, caplog, monkeypatch
):
    loaded = []  # the run folders the commands load (the module's encoder stands in)
    monkeypatch.setattr(image_index, "Encoder", lambda w: loaded.append(str(w)) or encoder)
    folder = _images(tmp_path / "images")
    out = tmp_path / "out" / "photos"
    with caplog.at_level(logging.WARNING, logger="jaxhash.image_index"):
        cli.main(["index", "--workdir", str(run_dir), "--images", str(folder), "--out", str(out)])
    assert "broken.jpg" in caplog.text  # skipped with a warning naming it
    index = image_index.load_index(tmp_path / "out" / "photos.npz")
    assert list(index.paths) == [
        "img0.JPG",
        "img1.png",
        "img2.JPG",
        "img3.png",
        "sub/img4.JPG",
        "sub/img5.png",
    ]
    assert index.bits == 16 and index.codes.shape == (6, 2) and index.codes.dtype == np.uint8
    assert index.run == str(run_dir.absolute()) and index.step == 3
    assert "6 images, 16-bit codes" in capsys.readouterr().out

    query = folder / "sub" / "img4.JPG"
    cli.main(["query", "--index", str(out) + ".npz", "--image", str(query), "--k", "50"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["rank", "hamming", "file"]
    table = [line.split() for line in printed[1:-1]]
    assert len(table) == 6  # k is lowered to the index size
    assert [int(row[1]) for row in table] == sorted(int(row[1]) for row in table)
    assert [str(query.absolute()), "0"] in [[row[2], row[1]] for row in table]
    assert loaded == [str(run_dir), str(run_dir.absolute())]  # query: the index's run
    picture = tmp_path / "out" / "photos_img4.png"
    assert printed[-1] == f"picture: {picture}"
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_index_codes_are_the_evaluation_codes(run_dir, encoder, tmp_path):
    """An indexed file's code is the model's sign code of its evaluation view, and the FAISS
    export holds the same codes."""
    pytest.importorskip("faiss")
    import faiss

    folder = _images(tmp_path / "images")
    index, path = image_index.build_index(
        run_dir, folder, tmp_path / "index.npz", faiss=True, encoder=encoder
    )
    views = np.stack([encoder.view(index.file(i)) for i in range(len(index))])
    np.testing.assert_array_equal(encoder.encode_views([views]), index.codes)
    exported = faiss.read_index_binary(str(path.with_suffix(".faiss")))
    distances, _ = exported.search(index.codes[:1], 1)
    assert exported.ntotal == 6 and distances[0, 0] == 0
    result = image_index.query_index(index, index.file(3), k=6, encoder=encoder)
    assert result.picture is None  # no index file, no --out: no picture
    same = [f for f, d in zip(result.files, result.distances, strict=True) if d == 0]
    assert index.file(3) in same


def test_bad_inputs_are_one_clear_error(run_dir, encoder, tmp_path, monkeypatch):
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    (tmp_path / "empty" / "deeper" / "readme.txt").write_text("no pictures")
    with pytest.raises(ValueError, match=r"no images under .*empty"):
        image_index.build_index(run_dir, tmp_path / "empty", tmp_path / "i.npz")
    with pytest.raises(FileNotFoundError, match=r"image folder .* does not exist"):
        image_index.build_index(run_dir, tmp_path / "nowhere", tmp_path / "i.npz")
    folder = _images(tmp_path / "images")
    with pytest.raises(FileNotFoundError, match="has no checkpoint; train into it first"):
        image_index.build_index(tmp_path / "empty", folder, tmp_path / "i.npz")

    def no_faiss():
        raise ImportError("the FAISS bridge needs faiss: pip install 'jaxhash[faiss]'")

    monkeypatch.setattr(faiss_bridge, "_faiss", no_faiss)
    with pytest.raises(ValueError, match=r"pip install 'jaxhash\[faiss\]'"):
        image_index.build_index(run_dir, folder, tmp_path / "i.npz", faiss=True)
    assert not (tmp_path / "i.npz").exists()  # failed before encoding anything

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(ValueError, match="none of the 1 image files could be read"):
        image_index.build_index(run_dir, broken, tmp_path / "i.npz", encoder=encoder)

    index, path = image_index.build_index(run_dir, folder, tmp_path / "index", encoder=encoder)
    assert path == tmp_path / "index.npz"
    with pytest.raises(ValueError, match=r"cannot read image .*a.png"):
        image_index.query_index(path, broken / "a.png", encoder=encoder)
    with pytest.raises(FileNotFoundError, match=r"query image .* does not exist"):
        image_index.query_index(path, tmp_path / "missing.png", encoder=encoder)
    longer = dataclasses.replace(index, bits=32, codes=np.tile(index.codes, 2))
    other = image_index.save_index(longer, tmp_path / "index32.npz")
    with pytest.raises(ValueError, match=r"32-bit codes but run .* makes 16-bit codes"):
        image_index.query_index(other, index.file(0), encoder=encoder)
    with pytest.raises(FileNotFoundError, match=r"index .* does not exist: build it"):
        image_index.load_index(tmp_path / "nothing.npz")
    np.savez(tmp_path / "arrays.npz", codes=index.codes)
    with pytest.raises(ValueError, match="is not a jaxhash index"):
        image_index.load_index(tmp_path / "arrays.npz")


def index_of_codes(codes, multi_index=None) -> image_index.ImageIndex:
    """An index of packed codes without images (the file format only), with ``multi_index``
    tables or none."""
    return image_index.ImageIndex(
        codes=codes,
        paths=np.array([f"img{i}.png" for i in range(len(codes))]),
        root="/images",
        bits=8 * codes.shape[1],
        run="/run",
        step=1,
        fingerprint="0" * 16,
        multi_index=multi_index,
    )


def test_the_index_file_keeps_its_multi_index(tmp_path):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (3000, 8), np.uint8)
    path = image_index.save_index(index_of_codes(codes), tmp_path / "i.npz")
    loaded = image_index.load_index(path)
    tables = loaded.multi_index
    assert tables is not None and tables.num_tables == 4
    np.testing.assert_array_equal(tables.codes, codes)
    queries = rng.integers(0, 256, (5, 8), np.uint8)
    expected = retrieval.hamming_topk(queries, codes, 12)
    distances, indices = tables.search(queries, 12)
    np.testing.assert_array_equal(distances, np.asarray(expected[0]))
    np.testing.assert_array_equal(indices, np.asarray(expected[1]))

    # Format 1 (before the tables): still read; the tables are built on load.
    with np.load(path) as data:
        fields = {n: data[n] for n in data.files if not n.startswith("mih_")}
    np.savez(tmp_path / "v1.npz", **{**fields, "format": np.int64(1)})
    old = image_index.load_index(tmp_path / "v1.npz")
    np.testing.assert_array_equal(old.multi_index.ids, tables.ids)

    # `jaxhash search` with the index file as its database: the multi-index, same answer.
    np.save(tmp_path / "q.npy", queries)
    out = tmp_path / "top.npz"
    argv = ["search", "--queries", str(tmp_path / "q.npy"), "--database", str(path)]
    assert cli.main([*argv, "--k", "12", "--out", str(out)]) == 0
    with np.load(out) as result:
        np.testing.assert_array_equal(result["indices"], np.asarray(expected[1]))


def test_an_index_file_of_another_version_truncated_or_corrupt_is_refused(tmp_path):
    codes = np.random.default_rng(1).integers(0, 256, (500, 4), np.uint8)
    path = image_index.save_index(index_of_codes(codes), tmp_path / "i.npz")
    with np.load(path) as data:
        fields = {n: data[n] for n in data.files}
    np.savez(tmp_path / "v9.npz", **{**fields, "format": np.int64(9)})
    with pytest.raises(ValueError, match="format 9; this jaxhash reads formats 1, 2: rebuild"):
        image_index.load_index(tmp_path / "v9.npz")
    raw = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(ValueError, match=r"truncated or not one.*rebuild it with jaxhash index"):
        image_index.load_index(tmp_path / "cut.npz")
    ids = fields["mih_ids"].copy()
    ids[0, [3, 4]] = ids[0, [4, 3]]  # two rows swapped in a table: consistent, yet wrong
    np.savez(tmp_path / "swapped.npz", **{**fields, "mih_ids": ids})
    with pytest.raises(ValueError, match=r"is corrupt: .* do not match their checksum"):
        image_index.load_index(tmp_path / "swapped.npz")
    offsets = fields["mih_offsets"].copy()
    offsets[-1] = 7
    np.savez(tmp_path / "offsets.npz", **{**fields, "mih_offsets": offsets})
    with pytest.raises(ValueError, match=r"bucket offsets are not 0\.\.500 ascending"):
        image_index.load_index(tmp_path / "offsets.npz")
    del fields["mih_ids"]
    np.savez(tmp_path / "partial.npz", **fields)
    with pytest.raises(ValueError, match="lacks its multi-index tables"):
        image_index.load_index(tmp_path / "partial.npz")


def test_faiss_exports_any_binary_factory():
    pytest.importorskip("faiss")
    codes = np.random.default_rng(2).integers(0, 256, (2000, 8), np.uint8)
    kinds = {
        "BFlat": "IndexBinaryFlat",
        "BIVF8": "IndexBinaryIVF",
        "BHNSW16": "IndexBinaryHNSW",
        "BHash4x16": "IndexBinaryMultiHash",
    }
    for factory, kind in kinds.items():
        exported = retrieval.faiss_index(codes, factory=factory)
        assert type(exported).__name__ == kind and exported.ntotal == 2000
        distances, _ = exported.search(codes[:3], 1)
        assert (distances[:, 0] == 0).all()
    with pytest.raises(ValueError, match="is not a FAISS binary index for 64-bit codes"):
        retrieval.faiss_index(codes, factory="BNoSuchIndex")
    with pytest.raises(ValueError, match="factory strings start with B"):
        retrieval.faiss_index(codes, factory="Flat")
    with pytest.raises(ValueError, match="could not train BIVF4096 on 2000 codes"):
        retrieval.faiss_index(codes, factory="BIVF4096")
