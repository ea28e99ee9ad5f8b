"""The experiment config: one table of fields, and everything derived from it.

* :mod:`~jaxhash.config.fields`: every field with its default, type, choices or bounds, doc and
  resume rule (:data:`FIELDS`); :func:`default_config` builds the defaults from it.
* :mod:`~jaxhash.config.kinds`: values one plain type cannot describe (optional values, paths,
  number tuples, class lists).
* :mod:`~jaxhash.config.validation`: :func:`validate_config`, the one validator, run at the
  entry points (``jaxhash.train.run``, ``jaxhash.run_folder``, the input pipeline's
  ``jaxhash.data.data_config``): unknown keys (named with the closest known one), wrong types,
  choices and bounds are errors naming the key.
* :mod:`~jaxhash.config.loading`: experiment files and ``--set`` overrides.
* :mod:`~jaxhash.config.resume`: what a rerun may change and still resume a checkpoint.
* :mod:`~jaxhash.config.demo`: the demo's config.
* ``docs/config.md``: the reference of every field, generated from the table
  (``python -m jaxhash.config.reference > docs/config.md``).

Experiment files in ``configs/`` return ``get_config()`` built on :func:`default_config` and
override a few fields (big_vision style). Each setting has one name: the global batch size is
``batch_size``, the evaluation batch size ``eval.batch_size``, the seed of everything ``seed``.

On the command line (``jaxhash train``), ``--set`` takes ``key.path=value`` items, each value a
Python literal, else taken as a string (repeated ``--set`` flags add up)::

    jaxhash train --config configs/demo.py:quick --workdir runs/q \\
        --set model.bits=32 data.image_size=64 data.mean="(0.5, 0.5, 0.5)" data.manual_dir=/data
"""

from jaxhash.config.demo import demo_config
from jaxhash.config.fields import DATASETS, FIELDS, Field, data_defaults, default_config
from jaxhash.config.kinds import AUGMENT_STYLES
from jaxhash.config.loading import apply_overrides, load_config_file
from jaxhash.config.resume import (
    FORMER_DEFAULTS,
    RESUMABLE_CHANGES,
    config_changes,
    with_former_defaults,
)
from jaxhash.config.validation import check_known, data_values, validate_config

__all__ = [
    "AUGMENT_STYLES",
    "DATASETS",
    "FIELDS",
    "FORMER_DEFAULTS",
    "RESUMABLE_CHANGES",
    "Field",
    "apply_overrides",
    "check_known",
    "config_changes",
    "data_defaults",
    "data_values",
    "default_config",
    "demo_config",
    "load_config_file",
    "validate_config",
    "with_former_defaults",
]
