"""The input pipeline's view of a config: the validated ``data`` block, frozen.

The fields of the data block, their defaults and their checks are rows of the one experiment
schema, the field table :data:`jaxhash.config.fields.FIELDS` (each documented there and in
``docs/config.md``), and are validated by :func:`jaxhash.config.validate_config`.
:func:`data_config` returns them as a :class:`DataConfig`, immutable and hashable, with the three
settings the pipeline takes from the rest of the config: ``global_batch_size``
(``config.batch_size``), ``eval_batch_size`` (``config.eval.batch_size``, None when 0) and
``seed`` (``config.seed``).
"""

from __future__ import annotations

from collections.abc import Mapping

import ml_collections

from jaxhash.config import DATASETS, check_known, data_defaults, data_values, validate_config

__all__ = ["DATASETS", "DataConfig", "data_config", "default_config"]

# The view's settings from outside the data block (config.batch_size, eval.batch_size, seed).
_OUTSIDE = ("global_batch_size", "eval_batch_size", "seed")


class DataConfig(ml_collections.FrozenConfigDict):
    """The validated data block (lists as tuples) plus ``global_batch_size``,
    ``eval_batch_size`` and ``seed``; build it with :func:`data_config`."""

    @property
    def augment_style(self) -> str:
        """The augmentation as one of ``jaxhash.config.AUGMENT_STYLES`` ("auto" unresolved)."""
        if self.augment is True:
            return "auto"
        if self.augment is False:
            return "none"
        return self.augment

    def replace(self, **changes) -> DataConfig:
        """A copy with ``changes`` (validated like the original)."""
        return data_config({**self.as_configdict().to_dict(), **changes})


def default_config() -> ml_collections.ConfigDict:
    """The data block's defaults (``jaxhash.config.default_config().data``)."""
    return data_defaults()


def data_config(config) -> DataConfig:
    """The validated :class:`DataConfig` of ``config``.

    ``config``: a :class:`DataConfig`; a whole experiment config (ConfigDict or dict with a
    ``data`` block); or, for calling the pipeline directly, a mapping of the view's own fields
    (data-block fields, ``global_batch_size``, ``eval_batch_size``, ``seed``; the rest
    default). Raises ValueError naming an unknown key (with the closest one) or a bad value.
    """
    if isinstance(config, DataConfig):
        return config
    if config is None:
        config = {}
    if isinstance(config, ml_collections.ConfigDict):
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise ValueError(
            f"config must be a ConfigDict, a dict or a DataConfig; got {type(config).__name__}."
        )
    if "data" not in config:  # the view's own fields
        view = dict(config)
        known = [*data_defaults().keys(), *_OUTSIDE]
        for key in view:
            check_known(key, known)
        config = {"data": {k: v for k, v in view.items() if k not in _OUTSIDE}, "eval": {}}
        if view.get("global_batch_size") is not None:
            config["batch_size"] = view["global_batch_size"]
        if view.get("eval_batch_size") is not None:
            config["eval"]["batch_size"] = view["eval_batch_size"]
        if view.get("seed") is not None:
            config["seed"] = view["seed"]
    validated = validate_config(config)
    return DataConfig(
        {
            **data_values(validated.data),
            "global_batch_size": int(validated.batch_size),
            "eval_batch_size": int(validated.eval.batch_size) or None,
            "seed": int(validated.seed),
        }
    )
