import math

import pytest

from surge.recommend import recommend_lr
from surge.theory import adam_optimal_lr, sgd_optimal_lr


def test_adam_recommendation_reads_the_law_through_the_starting_point():
    rec = recommend_lr(256, 3e-4, 2048, 512)
    eps_max = 3e-4 / float(adam_optimal_lr(256, 1.0, 512))
    assert rec.eps_max == pytest.approx(eps_max)
    assert rec.lr == pytest.approx(float(adam_optimal_lr(2048, eps_max, 512)))
    # Eq 2 is symmetric in log B about B_noise: 256 and 1024 sit at the same height
    assert recommend_lr(256, 3e-4, 1024, 512).lr == pytest.approx(3e-4)
    assert rec.linear_lr == pytest.approx(3e-4 * 8) and rec.sqrt_lr == pytest.approx(3e-4 * math.sqrt(8))
    assert rec.regime == "above" and rec.law == "adam" and rec.alpha is None


def test_warning_when_the_move_crosses_b_noise_or_grows_above_it():
    crossing = recommend_lr(256, 3e-4, 2048, 512)
    assert crossing.warning and "crosses B_noise=512" in crossing.warning and "falls" in crossing.warning
    above = recommend_lr(1024, 3e-4, 4096, 512)
    assert above.warning and "stays above B_noise=512" in above.warning
    assert above.lr < 3e-4
    below = recommend_lr(16, 1e-4, 64, 512)
    assert below.warning is None and below.regime == "below" and below.lr > 1e-4
    shrinking = recommend_lr(4096, 1e-4, 1024, 512)
    assert shrinking.warning is None and shrinking.lr > 1e-4


def test_sgd_recommendation_and_regime_at_b_noise():
    rec = recommend_lr(32, 1e-2, 512, 512, law="sgd", alpha=0.5)
    assert rec.lr == pytest.approx(1e-2 * float(sgd_optimal_lr(512, 1, 512, 0.5) / sgd_optimal_lr(32, 1, 512, 0.5)))
    assert rec.regime == "at" and rec.warning is None and rec.alpha == 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"from_batch_size": 0}, r"from_batch_size must be > 0, got 0.0"),
        ({"from_lr": -1e-3}, r"from_lr must be > 0, got -0.001"),
        ({"to_batch_size": math.nan}, r"to_batch_size must be a number, got nan"),
        ({"b_noise": math.inf}, r"b_noise must be finite, got inf"),
        ({"law": "lion"}, r"law must be one of 'adam', 'sgd'; got 'lion'"),
        ({"alpha": 0}, r"alpha must be > 0, got 0.0"),
    ],
)
def test_recommend_errors(kwargs, match):
    args = dict(from_batch_size=256, from_lr=3e-4, to_batch_size=2048, b_noise=512) | kwargs
    with pytest.raises(ValueError, match=match):
        recommend_lr(**args)
