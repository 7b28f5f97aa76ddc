"""Figure 1 and the training figure: they draw what the result holds, labelled, on log batch-size axes."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from surge.plots import plot_figure1, plot_training
from surge.simulate.montecarlo import figure1_data
from surge.simulate.training import QuadraticProblem, simulate_training

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def surge_result():
    return figure1_data("surge", batch_sizes=[1.0, 4.0, 16.0, 64.0, 256.0, 4096.0], samples=4_000, seed=0)


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_figure1_panels_axes_and_legend(surge_result, tmp_path):
    path = tmp_path / "sub" / "fig1.png"
    fig = plot_figure1(surge_result, path)
    assert isinstance(fig, Figure)
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 20_000
    sign_ax, sgd_ax = fig.axes
    for ax in (sign_ax, sgd_ax):
        assert ax.get_xscale() == "log"
        assert ax.get_xlabel() == "batch size B"
        assert ax.get_ylabel() == "optimal learning rate"
    texts = " | ".join(_legend_texts(sign_ax))
    for needle in ("Eq 9", "Theorem 3", "Theorem 4", "B_{noise}", "Monte Carlo"):
        assert needle in texts, texts
    assert "16.2" in texts  # the B_noise value is written in the legend
    assert "McCandlish" in " | ".join(_legend_texts(sgd_ax))
    assert "no surge" not in sign_ax.get_title()
    # the drawn B_noise line is at B_noise
    xs = [line.get_xdata()[0] for line in sign_ax.get_lines() if line.get_linestyle() == "-."]
    assert xs and xs[0] == pytest.approx(surge_result.b_noise)
    # the Monte-Carlo points are the result's numbers
    container = sign_ax.containers[0]
    np.testing.assert_allclose(container.lines[0].get_ydata(), surge_result.sign.mc_optimal_lr)


def test_figure1_without_surge_says_so(tmp_path):
    res = figure1_data("diagonal", batch_sizes=[1.0, 16.0, 256.0], samples=2_000)
    fig = plot_figure1(res, tmp_path / "diag.png")
    sign_ax = fig.axes[0]
    assert "no surge" in sign_ax.get_title()
    assert not any("B_{noise}" in t for t in _legend_texts(sign_ax))  # B_noise is infinite: no line


def test_figure1_without_path_writes_nothing(surge_result, tmp_path):
    fig = plot_figure1(surge_result)
    assert isinstance(fig, Figure) and not list(tmp_path.iterdir())


def test_training_figure(tmp_path):
    h = np.diag([1.0, 0.5, 0.25])
    p = QuadraticProblem("three", h, np.full(3, 0.1), np.ones(3))
    res = simulate_training(
        p,
        optimizer="sgd",
        batch_sizes=[1, 4, 16, 64],
        lrs=[0.1, 0.3, 1.0],
        target_loss=[0.3, 0.1],
        rounds=2,
        extra_steps=5,
        max_steps=400,
    )
    path = tmp_path / "training.png"
    fig = plot_training(res, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    lr_ax, se_ax = fig.axes
    assert lr_ax.get_xscale() == lr_ax.get_yscale() == "log"
    assert se_ax.get_xscale() == se_ax.get_yscale() == "log"
    assert lr_ax.get_xlabel() == "batch size B"
    assert "steps" in se_ax.get_ylabel() and "examples" in se_ax.get_xlabel()
    assert any("target loss 0.3" in t for t in _legend_texts(lr_ax))
