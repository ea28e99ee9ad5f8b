"""Label spaces (jaxhash.data.label_space): the zero-shot hold-out and a class subset,
relabelled, with its tree pruned, through the pipeline."""

import numpy as np
import pytest

from jaxhash import data
from tests.data.batch_checks import take, valid_ids


def test_zero_shot_holdout(synth):
    held = ["star/blue/solid", "star/blue/striped", "star/blue/dotted", "star/blue/checkered"]
    config = {**synth, "holdout_classes": held}
    info = data.get_dataset_info(config)
    assert info.holdout_labels == (56, 57, 58, 59) and len(info.seen_labels) == 60
    assert info.num_train == 1024 - 4 * 16
    for batch in take(data.host_train_batches(config), 20):
        assert not np.isin(batch["label"], info.holdout_labels).any()
    zero_shot = list(data.host_eval_batches(config, "test", 8, subset="holdout"))
    labels = np.concatenate([b["label"][b["mask"]] for b in zero_shot])
    assert len(labels) == 16 and set(labels.tolist()) == {56, 57, 58, 59}
    seen = valid_ids(list(data.host_eval_batches(config, "test", 64, subset="seen")))
    assert len(seen) == 240 and not set(seen.tolist()) & set(valid_ids(zero_shot).tolist())
    with pytest.raises(ValueError, match="not in the label space"):
        data.get_dataset_info({**synth, "holdout_classes": ["unicorn"]})


def test_class_subset_relabels_and_prunes_the_tree(synth):
    classes = ["star/blue/dotted", "round/red/solid", "round/red/striped"]
    config = {**synth, "classes": classes, "global_batch_size": 16}
    info = data.get_dataset_info(config)
    assert info.class_names == tuple(classes) and info.num_train == 48
    assert info.hierarchy.classes == tuple(classes) and info.hierarchy.height("root") == 3
    raw = data.load_split(config, "train").labels
    full_names = data.get_dataset_info(synth).class_names
    for batch in take(data.host_train_batches(config), 4):
        for label, example in zip(batch["label"], batch["id"], strict=True):
            assert classes[label] == full_names[raw[example]]
