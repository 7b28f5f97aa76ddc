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
    shrinking = recommend_lr(4096, 1e-4, 1024, 512)  # down, above B_noise: lr rises, the rules say it falls
    assert shrinking.warning and "rises as the batch size shrinks" in shrinking.warning and shrinking.lr > 1e-4


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


def test_moving_down_across_b_noise_warns_as_moving_up_does():
    down = recommend_lr(512, 1e-3, 1, 64)  # issue 11 item 18
    assert down.warning and "crosses B_noise=64" in down.warning
    assert down.lr == pytest.approx(1e-3 * float(adam_optimal_lr(1, 1, 64) / adam_optimal_lr(512, 1, 64)))
    assert recommend_lr(32, 1e-3, 8, 64).warning is None  # staying below: the rules point the right way


def test_beta2_rule_keeps_the_second_moment_half_life_in_examples():
    rec = recommend_lr(256, 3e-4, 32, 512, beta2=0.999)
    assert rec.beta2 == pytest.approx(0.999 ** (32 / 256))
    half_life = lambda b2, bs: bs * math.log(0.5) / math.log(b2)  # noqa: E731  examples
    assert half_life(rec.beta2, 32) == pytest.approx(half_life(0.999, 256))
    with pytest.raises(ValueError, match=r"beta2 must be in \(0, 1\), got 1"):
        recommend_lr(256, 3e-4, 32, 512, beta2=1.0)


def test_without_b_noise_the_rules_of_thumb_and_where_to_get_it():
    rec = recommend_lr(256, 3e-4, 1024, beta2=0.95)
    assert math.isnan(rec.lr) and rec.regime == "unknown"
    assert rec.linear_lr == pytest.approx(1.2e-3) and rec.sqrt_lr == pytest.approx(6e-4)
    assert "surge analyze --table" in rec.warning and "fit b-noise" in rec.warning
    assert rec.beta2 == pytest.approx(0.95**4)


def test_recommend_cli_both_ways_and_without_b_noise(run_cli):
    code, out, err = run_cli(
        "recommend", "--from-batch-size", "512", "--from-lr", "1e-3", "--to-batch-size", "1", "--b-noise", "64"
    )
    assert code == 0 and "crosses B_noise=64" in " ".join(err.split())
    code, out, err = run_cli(
        "recommend", "--from-batch-size", "256", "--from-lr", "3e-4", "--to-batch-size", "1024", "--beta2", "0.999"
    )
    assert code == 0 and "linear rule" in out and "adam law" not in out and "0.996" in out
    assert "no B_noise given" in " ".join(err.split())
