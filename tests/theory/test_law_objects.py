"""The law objects: evaluation against the closed forms written out, inversion (Eq 23 / 24), names."""

import numpy as np
import pytest

from surge.errors import SurgeError
from surge.fit import compare_laws, fit_eps_max
from surge.theory.laws import ADAM_LAW, AdamLaw, SGDLaw, get_law

B = np.array([1.0, 4.0, 64.0, 300.0, 5000.0])


def test_adam_law_is_eq_2_written_out():
    want = 1e-3 / (0.5 * (np.sqrt(64 / B) + np.sqrt(B / 64)))
    np.testing.assert_allclose(ADAM_LAW.lr(B, 1e-3, 64), want, rtol=1e-14)
    assert ADAM_LAW.lr(64, 1e-3, 64) == pytest.approx(1e-3)  # the peak: eps_max at B_noise


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_sgd_law_is_eq_24_curve_written_out(alpha):
    want = 2e-3 / (1 + 64 / B) ** alpha  # the exponent on (1 + B_noise / B)
    np.testing.assert_allclose(SGDLaw(alpha).lr(B, 2e-3, 64), want, rtol=1e-14)


@pytest.mark.parametrize("law", [AdamLaw(), SGDLaw(1.0), SGDLaw(0.5)])
def test_inversion_gives_back_eps_max(law):
    lr = law.lr(B, 3e-4, 100.0)
    np.testing.assert_allclose(law.eps_max_at(B, lr, 100.0), 3e-4, rtol=1e-12)
    # Eq 23 / 24 are the mean of these inversions
    assert fit_eps_max(B, lr, 100.0, law=law).eps_max == pytest.approx(3e-4, rel=1e-12)


def test_names_and_lookup():
    assert [get_law(n).name for n in ("adam", "sgd(alpha=1)", "sgd(alpha=0.5)", "sgd(alpha=free)")] == [
        "adam",
        "sgd(alpha=1)",
        "sgd(alpha=0.5)",
        "sgd(alpha=free)",
    ]
    assert get_law("sgd", 0.5) == SGDLaw(0.5) and get_law(ADAM_LAW) is ADAM_LAW
    assert [f.name for f in compare_laws(B, ADAM_LAW.lr(B, 1e-3, 64)).laws] == [
        "adam",
        "sgd(alpha=1)",
        "sgd(alpha=0.5)",
        "sgd(alpha=free)",
    ]
    with pytest.raises(ValueError, match="law must be 'adam' or 'sgd'"):
        get_law("lion")
    with pytest.raises(ValueError, match="alpha must be > 0"):
        SGDLaw(-1.0)
    for bad in ("sgd(alpha=1.2.3)", "sgd(alpha=e)", "sgd(alpha=+-)"):  # the name's pattern admits them
        with pytest.raises(SurgeError, match=r"alpha must be a number or 'free', got"):
            get_law(bad)
    with pytest.raises(ValueError, match="free alpha has no value"):
        SGDLaw(None).lr(B, 1e-3, 64)


def test_a_law_comparison_fit_predicts_with_its_own_law():
    lr = SGDLaw(0.5).lr(B, 1e-3, 64)
    comp = compare_laws(B, lr)
    fit = next(f for f in comp.laws if f.name == "sgd(alpha=free)")
    np.testing.assert_allclose(fit.predict(B), lr, rtol=1e-5)
