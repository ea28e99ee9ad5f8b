"""``console.muted``: another library's expected notes are dropped within a block, nothing else."""

import logging

import pytest

from jaxhash import console


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture()
def caught():
    logger, handler = logging.getLogger("jaxhash_test_library"), _Records()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, handler.messages
    logger.removeHandler(handler)


def test_muted_drops_the_named_notes_below_error_only(caught):
    logger, messages = caught
    with console.muted("Using custom", "Variant folder", logger=logger.name):
        logger.info("Using custom data configuration x")
        logger.warning("Variant folder /a has no dataset_info.json")
        logger.error("Using custom data configuration failed")
        logger.warning("Something else")
    assert messages == ["Using custom data configuration failed", "Something else"]


def test_muted_is_undone_after_the_block_even_on_error(caught):
    logger, messages = caught
    with pytest.raises(RuntimeError), console.muted("Note", logger=logger.name):
        raise RuntimeError("boom")
    logger.info("Note after the block")
    assert messages == ["Note after the block"]
    assert not logger.filters
