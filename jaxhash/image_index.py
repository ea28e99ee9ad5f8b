"""From images to answers: index a folder of images with a trained run, query it with an image.

    jaxhash index --workdir RUN --images DIR --out INDEX.npz [--faiss [FACTORY]]
    jaxhash query --index INDEX.npz --image FILE --k 10 [--out grid.png]

:func:`build_index` encodes every image under a folder (recursively; the suffixes of
``IMAGE_SUFFIXES``, any size) with the run's newest checkpoint, the way its evaluation sees
images: a central square crop of ``eval_crop_fraction * min(H, W)``, resized to the run's input
size and normalised with its mean and std (:mod:`jaxhash.data.views`). Images go through the
model in batches, sharded over all the devices JAX has. Unreadable files are skipped with a
warning naming each; a folder with no readable image is an error.

**The index file** (``.npz``, written by :func:`save_index`, read by :func:`load_index`)::

    format       int      INDEX_FORMAT (2)
    codes        uint8    [N, ceil(bits / 8)]  packed codes, np.packbits(z > 0) layout
    paths        str      [N]  file paths relative to root, sorted
    root         str      the indexed folder (absolute)
    bits         int      code length K
    run          str      the run folder (absolute) whose model made the codes
    step         int      its checkpoint step
    fingerprint  str      SHA-256 (16 hex digits) of the run's saved config
    mih_starts, mih_lengths, mih_ids, mih_offsets, mih_checksum
                          the exact multi-index hash of the codes (:mod:`jaxhash.multi_index`)
                          and the SHA-256 of codes and tables, checked on load

The tables are saved rather than built on load: loading then costs a read and a checksum,
where building sorts every code once per table. Files of format 1 (no tables) still load; their
tables are built on load. A file whose tables do not match their checksum is refused.

``--faiss`` also writes ``INDEX.faiss``, a FAISS binary index of the same codes
(``IndexBinaryFlat``; ``--faiss FACTORY`` names another, as ``faiss.index_binary_factory``
reads it: ``BIVF1024``, ``BHNSW32``, ``BHash4x16``; read it with ``faiss.read_index_binary``;
needs the ``faiss`` extra). :func:`query_index` encodes a query image with the index's run (or
another run with the same code length), returns its ``k`` nearest files by Hamming distance
(ties to the earlier file; exact, by the multi-index) and draws them as a retrieval grid
(:mod:`jaxhash.evaluation.retrieval_grid`).

Loading a run (:func:`jaxhash.run_folder.open_run`) reads its config and the inputs saved with
its checkpoints (class count, input size, crop and normalisation), not its training data; only
runs whose checkpoints predate the saved inputs read them from their data set, which must then
be where the config says.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from jaxhash.multi_index import MultiIndex

log = logging.getLogger(__name__)

INDEX_FORMAT = 2
_READABLE_FORMATS = (1, 2)  # 1: without the multi-index tables (built on load)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_DECODE_THREADS = 4


@dataclasses.dataclass(frozen=True)
class ImageIndex:
    """Packed codes of image files and where they came from (see the module docstring);
    ``multi_index``: the codes' exact search tables (None: searched by brute force)."""

    codes: np.ndarray
    paths: np.ndarray
    root: str
    bits: int
    run: str
    step: int
    fingerprint: str
    multi_index: MultiIndex | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def file(self, i: int) -> Path:
        """The absolute path of entry ``i``."""
        return Path(self.root) / str(self.paths[i])


@dataclasses.dataclass(frozen=True)
class QueryResult:
    """The ``k`` nearest files of a query image: paths, Hamming distances, the grid's PNG."""

    image: str
    files: list[Path]
    distances: np.ndarray
    picture: str | None


class Encoder:
    """A run folder's newest checkpoint as an image-file encoder (its evaluation view), opened
    with :func:`jaxhash.run_folder.open_run`: the run's saved inputs say how to crop, resize
    and normalise, so the training data are not needed."""

    def __init__(self, workdir: str | os.PathLike):
        from jaxhash.data.preprocess import image_dtype
        from jaxhash.run_folder import open_run

        run = open_run(workdir)
        inputs = run.inputs
        self.workdir = str(Path(workdir).absolute())
        self.step = run.step
        self.bits = int(run.config.model.bits)
        self.fingerprint = run.fingerprint
        self.image_size, self.crop_fraction = inputs.image_size, inputs.crop_fraction
        self.mean, self.std, self.dtype = inputs.mean, inputs.std, image_dtype(inputs)
        self.batch_size = int(run.config.eval.batch_size or run.config.batch_size)
        self._run = run

    def view(self, path: str | os.PathLike) -> np.ndarray:
        """float32 ``[S, S, 3]`` in [0, 255]: the cropped, resized file (ValueError: unreadable)."""
        from jaxhash.data.views import file_view

        return file_view(path, self.image_size, self.crop_fraction)

    def encode_files(self, files: Sequence[Path]) -> tuple[np.ndarray, list[Path]]:
        """Packed codes ``uint8 [M, ceil(K / 8)]`` of the readable ``files`` and those files
        (unreadable ones skipped with a warning naming each)."""
        kept: list[Path] = []

        def batches() -> Iterator[np.ndarray]:
            with ThreadPoolExecutor(_DECODE_THREADS) as pool:
                for start in range(0, len(files), self.batch_size):
                    chunk = files[start : start + self.batch_size]
                    views = list(pool.map(self._try_view, chunk))
                    good = [(f, v) for f, v in zip(chunk, views, strict=True) if v is not None]
                    if good:
                        kept.extend(f for f, _ in good)
                        yield np.stack([v for _, v in good])

        codes = self.encode_views(batches())
        if not kept:
            raise ValueError(
                f"none of the {len(files)} image files could be read (see the warnings above)."
            )
        return codes, kept

    def encode_views(self, batches) -> np.ndarray:
        """Packed codes ``uint8 [M, ceil(K / 8)]`` of batches of views ``[B, S, S, 3]`` (as
        :meth:`view` gives them), normalised here and sharded over the run's mesh."""
        from jaxhash.data.preprocess import normalize
        from jaxhash.evaluation.encoding import encode
        from jaxhash.parallel import DATA_AXIS

        rows = []

        def normalised():
            for images in batches:
                rows.append(len(images))
                yield normalize(images, self.mean, self.std, self.dtype)

        try:
            codes = encode(
                self._run.encode_fn,
                self._run.variables,
                normalised(),
                mesh=self._run.mesh,
                axis_name=DATA_AXIS,
                pack=True,
            )
        except ValueError:
            if sum(rows):
                raise
            return np.zeros((0, -(-self.bits // 8)), np.uint8)  # no batch held an image
        return np.asarray(codes)

    def _try_view(self, path: Path) -> np.ndarray | None:
        try:
            return self.view(path)
        except ValueError as error:
            log.warning("skipped: %s", error)
            return None


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively, suffixes ``IMAGE_SUFFIXES`` in any case),
    sorted; FileNotFoundError / ValueError when the folder is missing or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist: pass --images DIR.")
    files = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise ValueError(
            f"no images under {folder}: put {', '.join(IMAGE_SUFFIXES)} files in it (searched "
            "recursively)."
        )
    return files


def _faiss_path(out: Path) -> Path:
    return out.with_suffix(".faiss")


def _index_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out if out.suffix == ".npz" else out.with_name(out.name + ".npz")


def build_index(
    workdir: str | os.PathLike,
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    faiss: bool | str = False,
    encoder: Encoder | None = None,
) -> tuple[ImageIndex, Path]:
    """Encode the images under ``images`` with run ``workdir``; write the index to ``out``
    (``.npz`` added when missing, with its multi-index tables) and, with ``faiss``, ``out``
    with suffix ``.faiss``: ``True`` or ``"BFlat"`` an ``IndexBinaryFlat``, else the
    ``faiss.index_binary_factory`` string (e.g. ``"BIVF1024"``, ``"BHNSW32"``).

    ``encoder``: the run already loaded (``Encoder(workdir)``), to index several folders.
    Returns the index and the path it was written to.
    """
    from jaxhash.multi_index import MultiIndex
    from jaxhash.search import faiss as faiss_bridge

    factory = "BFlat" if faiss is True else faiss or None
    if factory is not None:
        try:
            faiss_bridge._faiss()
        except ImportError as error:
            raise ValueError(f"--faiss: {error}") from None
    files = find_images(images)
    encoder = encoder or Encoder(workdir)
    if factory is not None:
        faiss_bridge.check_faiss_factory(factory, 8 * -(-encoder.bits // 8))
    codes, kept = encoder.encode_files(files)
    root = Path(images).absolute()
    index = ImageIndex(
        codes=codes,
        paths=np.array([str(p.absolute().relative_to(root)) for p in kept]),
        root=str(root),
        bits=encoder.bits,
        run=encoder.workdir,
        step=encoder.step,
        fingerprint=encoder.fingerprint,
        multi_index=MultiIndex.build(codes),
    )
    path = save_index(index, out)
    if factory is not None:
        import faiss as faiss_lib

        exported = faiss_bridge.faiss_index(codes, 8 * codes.shape[1], factory=factory)
        faiss_lib.write_index_binary(exported, str(_faiss_path(path)))
    skipped = len(files) - len(kept)
    log.info("indexed %d images (%d skipped) into %s", len(kept), skipped, path)
    return index, path


def save_index(index: ImageIndex, out: str | os.PathLike) -> Path:
    """Write ``index`` as ``.npz`` (the format of the module docstring), with its multi-index
    (built here when it has none, or one of other codes); returns the path."""
    from jaxhash.multi_index import MultiIndex

    codes = np.asarray(index.codes, np.uint8)
    tables = index.multi_index
    if tables is None or not np.array_equal(tables.codes, codes):
        tables = MultiIndex.build(codes)
    path = _index_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        format=np.int64(INDEX_FORMAT),
        codes=codes,
        paths=np.asarray(index.paths, str),
        root=np.str_(index.root),
        bits=np.int64(index.bits),
        run=np.str_(index.run),
        step=np.int64(index.step),
        fingerprint=np.str_(index.fingerprint),
        **{f"mih_{name}": array for name, array in tables.to_arrays().items()},
    )
    return path


def load_index(path: str | os.PathLike) -> ImageIndex:
    """The index written by :func:`build_index` (FileNotFoundError / ValueError otherwise:
    not an index, a format this version cannot read, truncated, or corrupt tables)."""
    import zipfile

    from jaxhash.multi_index import MultiIndex

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"index {path} does not exist: build it with jaxhash index --workdir RUN --images "
            f"DIR --out {path}."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path} is not a readable jaxhash index (.npz; truncated or not one: {error}); "
            "rebuild it with jaxhash index."
        ) from None
    needed = {"format", "codes", "paths", "root", "bits", "run", "step", "fingerprint"}
    if not needed <= fields.keys():
        raise ValueError(f"{path} is not a jaxhash index: rebuild it with jaxhash index.")
    version = int(fields["format"])
    if version not in _READABLE_FORMATS:
        raise ValueError(
            f"{path} is a jaxhash index of format {version}; this jaxhash reads formats "
            f"{', '.join(map(str, _READABLE_FORMATS))}: rebuild it with jaxhash index (or use "
            "the jaxhash version that wrote it)."
        )
    codes = fields["codes"]
    if version == 1:
        tables = MultiIndex.build(codes)
    else:
        saved = {name: fields.get(f"mih_{name}") for name in MultiIndex.ARRAYS}
        if any(array is None for array in saved.values()):
            raise ValueError(f"{path} lacks its multi-index tables: rebuild it (jaxhash index).")
        tables = MultiIndex.from_arrays(codes, saved, str(path))
    return ImageIndex(
        codes=fields["codes"],
        paths=fields["paths"],
        root=str(fields["root"]),
        bits=int(fields["bits"]),
        run=str(fields["run"]),
        step=int(fields["step"]),
        fingerprint=str(fields["fingerprint"]),
        multi_index=tables,
    )


def query_index(
    index: str | os.PathLike | ImageIndex,
    image: str | os.PathLike,
    *,
    k: int = 10,
    workdir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    encoder: Encoder | None = None,
    index_path: str | os.PathLike | None = None,
) -> QueryResult:
    """The ``k`` nearest indexed files of ``image`` (Hamming, ties to the earlier file), and a
    grid picture of them at ``out`` (default: ``<index>_<image stem>.png`` beside the index).

    ``index``: an index file or a loaded :class:`ImageIndex` (give ``index_path`` or ``out``
    then, for the picture); the query is encoded by ``encoder``, else run ``workdir``, else
    the run that built the index, whose code length must be the index's.
    """
    from jaxhash import retrieval

    if not isinstance(index, ImageIndex):
        index_path, index = index, load_index(index)
    if k < 1:
        raise ValueError(f"--k must be at least 1; got {k}.")
    image = Path(image)
    if not image.is_file():
        raise FileNotFoundError(f"query image {image} does not exist.")
    encoder = encoder or Encoder(workdir or index.run)
    if encoder.bits != index.bits:
        raise ValueError(
            f"the index holds {index.bits}-bit codes but run {encoder.workdir} makes "
            f"{encoder.bits}-bit codes: query with the run that built it (--workdir "
            f"{index.run}) or rebuild the index with this run (jaxhash index)."
        )
    if (encoder.fingerprint, encoder.step) != (index.fingerprint, index.step):
        log.warning(
            "the index was built by %s at step %d, the query is encoded by %s at step %d: "
            "codes of different models are not comparable; rebuild the index to match.",
            index.run,
            index.step,
            encoder.workdir,
            encoder.step,
        )
    query = encoder.view(image)
    codes = encoder.encode_views([query[None]])
    k = min(k, len(index))
    if index.multi_index is not None:
        distances, indices = index.multi_index.search(codes, k)
    else:
        distances, indices = retrieval.hamming_topk(codes, index.codes, k)
    distances, indices = np.asarray(distances)[0], np.asarray(indices)[0]
    files = [index.file(int(i)) for i in indices]
    names = [str(index.paths[int(i)]) for i in indices]
    picture = None
    if out is not None or index_path is not None:
        if out is None:
            out = Path(index_path).with_name(f"{Path(index_path).stem}_{image.stem}.png")
        picture = _draw_query(encoder, query, image, files, names, distances, index, out)
    return QueryResult(str(image), files, distances, picture)


def _draw_query(encoder, query, image: Path, files, names, distances, index, out) -> str:
    """The query's grid: one row, the query then its results (Hamming distances, no colours)."""
    from jaxhash.data.views import to_uint8
    from jaxhash.evaluation.retrieval_grid import GridRow, draw_grid

    def pixels(path: Path) -> np.ndarray:
        try:
            return to_uint8(encoder.view(path))
        except (ValueError, FileNotFoundError):
            return np.full((encoder.image_size,) * 2 + (3,), 200, np.uint8)  # moved or deleted

    row = GridRow(
        query=to_uint8(query),
        query_name=image.name,
        results=np.stack([pixels(f) for f in files]),
        result_names=names,
        hamming=distances,
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return draw_grid(
        [row],
        out,
        title=f"{image.name}: nearest of {len(index)} indexed images ({index.bits} bits)",
    )


def format_results(result: QueryResult) -> str:
    """A small table of a query's results: rank, Hamming distance, file."""
    lines = [f"{'rank':>4}  {'hamming':>7}  file"]
    for rank, (path, distance) in enumerate(zip(result.files, result.distances, strict=True)):
        lines.append(f"{rank + 1:>4}  {int(distance):>7}  {path}")
    return "\n".join(lines)


__all__ = [
    "IMAGE_SUFFIXES",
    "INDEX_FORMAT",
    "Encoder",
    "ImageIndex",
    "QueryResult",
    "build_index",
    "find_images",
    "format_results",
    "load_index",
    "query_index",
    "save_index",
]
