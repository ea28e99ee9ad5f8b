"""jaxhash.losses.common: every term's handling of invalid batches (no valid row, labels out
of range): a ValueError when the input is concrete, NaN (never a number) under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import losses
from jaxhash.losses import ClassTargets
from tests.losses.loss_checks import hashing_inputs


def _invalid_cases():
    codes, logits, labels, cd = hashing_inputs(101, 8, 4)
    table = jnp.asarray(cd)
    return (
        {
            "sim": lambda lab, m: losses.similarity_loss(codes, ClassTargets(lab, table), mask=m),
            "ce": lambda lab, m: losses.classification_loss(logits, lab, mask=m),
            "quant": lambda lab, m: losses.quantization_loss(codes, mask=m),
            "balance": lambda lab, m: losses.bit_balance_loss(codes, mask=m),
            **{
                form: lambda lab, m, form=form: losses.binary_kl_loss(
                    codes, jax.random.key(0), form=form, mask=m
                )
                for form in losses.KL_FORMS
            },
        },
        jnp.asarray(labels),
        logits.shape[1],
    )


@pytest.mark.slow
@pytest.mark.parametrize("term", ["sim", "ce", "quant", "balance", *losses.KL_FORMS])
def test_all_masked_batch_is_an_error_or_nan_under_jit(term):
    """A batch with no valid row: ValueError for a concrete mask, NaN (never a number) traced."""
    cases, labels, _ = _invalid_cases()
    fn = cases[term]
    none = jnp.zeros(labels.shape, bool)
    with pytest.raises(ValueError, match="mask selects no row"):
        fn(labels, none)
    assert np.isnan(float(jax.jit(fn)(labels, none)))
    assert np.isfinite(float(jax.jit(fn)(labels, none.at[:3].set(True))))


@pytest.mark.parametrize("term", ["sim", "ce"])
@pytest.mark.parametrize("bad", [-1, "C"])
def test_labels_out_of_range_are_an_error_or_nan_under_jit(term, bad):
    """Labels outside [0, C): ValueError naming them when concrete, NaN under jit."""
    cases, labels, num_classes = _invalid_cases()
    fn = cases[term]
    wrong = labels.at[0].set(num_classes if bad == "C" else bad)
    with pytest.raises(ValueError, match=rf"labels must lie in \[0, {num_classes}\)"):
        fn(wrong, None)
    assert np.isnan(float(jax.jit(fn)(wrong, None)))
    assert np.isfinite(float(jax.jit(fn)(labels, None)))
