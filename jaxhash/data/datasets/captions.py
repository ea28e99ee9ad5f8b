"""``captions``: captioned images, a TSV of captions and the folder of images it names.

Conceptual-Captions- or Flickr8k-style data the user downloaded, prepared once as the TFDS
builder ``caption_folder`` (:class:`jaxhash.data.builders.CaptionFolder`); no class labels.
Batches carry a ``caption`` and, with ``caption_embeddings=True``, its sentence embedding
(:mod:`jaxhash.data.captions`).
"""

from __future__ import annotations

from pathlib import Path

from jaxhash.data import provenance
from jaxhash.data.config import DataConfig
from jaxhash.data.datasets import Dataset, Opened
from jaxhash.data.prepare import DatasetNotFoundError, prepare


def open_captions(config: DataConfig, data_dir: str) -> Opened:
    """The caption TSV and image folder of ``config``, prepared into ``data_dir`` once."""
    from jaxhash.data import builders  # registers jaxhash's TFDS builders

    tsv = Path(config.captions_tsv).expanduser() if config.captions_tsv else None
    images = Path(config.images_dir).expanduser() if config.images_dir else None
    if tsv is None or images is None or not tsv.is_file() or not images.is_dir():
        raise DatasetNotFoundError(
            "captions needs config.data.captions_tsv (a file of caption<TAB>image-file lines, "
            "e.g. Conceptual Captions' TSV after downloading its images, or Flickr8k's "
            "captions) and config.data.images_dir (the folder the image files are in); got "
            f"captions_tsv={config.captions_tsv!r}, images_dir={config.images_dir!r}. The "
            "TFDS builder 'caption_folder' (jaxhash.data.builders.CaptionFolder) prepares them "
            f"into {data_dir}; nothing is downloaded."
        )
    builder = builders.CaptionFolder(
        config=builders.CaptionFolderConfig.make(
            tsv, images, config.captions_columns, config.captions_test_fraction
        ),
        data_dir=data_dir,
    )
    if not builder.is_prepared():
        prepare(builder)
        provenance.record(builder, source=str(tsv), images_dir=str(images))
    return Opened(
        builder=builder,
        class_names=(),
        keys={"image": "image", "captions": "captions", "file_name": "file_name", "index": "index"},
    )


DATASET = Dataset(name="captions", title="captioned images", open=open_captions, has_captions=True)
