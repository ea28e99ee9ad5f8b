"""Host shares of a split (jaxhash.data.sharding) against TFDS's split_for_jax_process."""

import pytest
import tensorflow_datasets as tfds

from jaxhash import data


@pytest.mark.parametrize("num", [0, 1, 7, 100, 1001])
@pytest.mark.parametrize("hosts", [1, 2, 3, 8])
def test_host_range_is_tfds_split_for_jax_process(num, hosts):
    splits = tfds.core.SplitDict(
        [tfds.core.SplitInfo(name="train", shard_lengths=[num], num_bytes=0)]
    )
    covered = []
    for host in range(hosts):
        start, stop = data.host_range(num, host, hosts)
        sub = tfds.split_for_jax_process("train", process_index=host, process_count=hosts)
        (absolute,) = sub.to_absolute(splits)
        assert (absolute.from_ or 0, absolute.to if absolute.to is not None else num) == (
            start,
            stop,
        )
        covered.extend(range(start, stop))
    assert covered == list(range(num))
    with pytest.raises(ValueError, match="process_index"):
        data.host_range(10, 2, 2)
