"""jaxhash.methods: the named loss recipes of the study."""

import pytest

from jaxhash import config as config_lib
from jaxhash import methods


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("ce", (1.0, 0.0, 0.0, 0.0, "linear")),
        ("ce_quant", (1.0, 0.0, 0.0, 0.1, "linear")),
        ("ce_sim", (1.0, 3.0, 0.0, 0.0, "linear")),
        ("paper", (1.0, 3.0, methods.PAPER_KL[1], 0.0, "linear")),
        ("paper-wkv-0.1", (1.0, 3.0, 0.1, 0.0, "linear")),
        ("sim_kl-corner-2-tanh", (0.0, 3.0, 2.0, 0.0, "tanh")),
    ],
)
def test_apply_method(name, want):
    config = config_lib.default_config()
    methods.apply_method(config, name)
    loss = config.loss
    got = (loss.w_ce, loss.w_sim, loss.w_kl, loss.w_quant, config.model.hash_activation)
    assert got == want
    form = name.split("-")[1] if "-" in name else methods.PAPER_KL[0]
    assert loss.kl_form == form
    config_lib.validate_config(config)


@pytest.mark.parametrize(
    "name", ["paper-kde-1", "paper-wkv-0", "paper-wkv-x", "ce-tanh", "sim", "paper-wkv"]
)
def test_unknown_method_names_the_grammar(name):
    with pytest.raises(ValueError, match="unknown method"):
        methods.parse_method(name)


def test_study_argument():
    assert methods.parse_study_arg("ce_sim,32", "c.py") == ("ce_sim", 32, 0, False)
    assert methods.parse_study_arg("paper,64,2,zeroshot", "c.py") == ("paper", 64, 2, True)
    with pytest.raises(ValueError, match="zeroshot"):
        methods.parse_study_arg("paper,64,2,zs", "c.py")
    with pytest.raises(ValueError, match="method,bits"):
        methods.parse_study_arg("paper", "c.py")
