"""The sweep figures: the paper's two panels per stage and B_noise against the target loss.

The drawing functions only draw: each test checks that what is on the axes is what the analysis says
(heatmap values, optimal lrs, the fitted curves recomputed independently, the B_noise line, the Eq 22
line), with labels, units, scales, legend and colorbar a reader needs.
"""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.collections import QuadMesh  # noqa: E402

from surge.analysis import analyze, synthetic_frame  # noqa: E402
from surge.plots.sweep_figures import (  # noqa: E402
    b_noise_figure,
    save_figure,
    save_sweep_figures,
    stage_figure,
    stage_stem,
)


@pytest.fixture(scope="module")
def geometric():
    """Log-spaced grid, with diverged trials at large lrs and censoring at the last stage."""
    frame = synthetic_frame("adam", seed=1, rounds=3, diverge_above=3.0, max_steps=20000)
    return analyze(frame, n_boot=100)


@pytest.fixture(scope="module")
def linear():
    """A Table 1-like linear grid (CNN: lr 1e-4..1e-3 step 1e-4, B 1..12), one stage no trial reached."""
    frame = synthetic_frame(
        "adam",
        b_noise=4.0,
        eps_max=6e-4,
        batch_sizes=range(1, 13),
        lrs=np.arange(1, 11) * 1e-4,
        rounds=4,
        target_loss=(1.0, 0.6),
        s_min=300,
        seed=3,
    )
    last = frame["target_loss"] == 0.6
    frame.loc[last, ["reached", "steps", "examples", "loss_decrease"]] = [False, np.nan, np.nan, np.nan]
    return analyze(frame, n_boot=100)


def _axes(fig):
    by_title = {ax.get_title(): ax for ax in fig.axes}
    left = next(ax for t, ax in by_title.items() if t.startswith("grid search"))
    right = next(ax for t, ax in by_title.items() if t.startswith("B_noise from"))
    cbar = next(ax for ax in fig.axes if ax not in (left, right))
    return left, right, cbar


def test_stage_figure_left_panel_draws_the_analysis(geometric):
    st = geometric.stages[0]
    fig = stage_figure(geometric, st)
    left, right, cbar = _axes(fig)
    # labels, units, scales of a log-spaced grid
    assert left.get_xlabel() == "batch size B [examples]"
    assert left.get_ylabel() == "learning rate"
    assert left.get_xscale() == "log" and left.get_yscale() == "log"
    assert "training-loss decrease over the next 10 steps" in cbar.get_ylabel()
    # the heatmap is the analysis' mean decrease grid
    mesh = next(c for c in left.collections if isinstance(c, QuadMesh))
    shown = np.ma.filled(mesh.get_array(), np.nan).reshape(st.grid.mean.shape)
    np.testing.assert_array_equal(np.isnan(shown), np.isnan(st.grid.mean))
    np.testing.assert_allclose(shown[np.isfinite(shown)], st.grid.mean[np.isfinite(st.grid.mean)])
    # legend: the optimal lrs, the three laws, B_noise, diverged cells
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    for want in (
        "optimal lr per batch size",
        "Adam law (Eq 2 / 23)",
        "SGD law, alpha = 1 (Eq 24)",
        "SGD law, alpha = 0.5 (Eq 24)",
        "B_noise (Eq 22) = ",
        "diverged (not a candidate)",
    ):
        assert any(want in lab for lab in labels), (want, labels)
    # the curves: recomputed from the fitted eps_max, distinguishable by colour and line style
    lines = {ln.get_label().split(",")[0]: ln for ln in left.get_lines()}
    adam = lines["Adam law (Eq 2 / 23)"]
    x, y = adam.get_data()
    fit = st.eps_max_fit("adam")
    expect = 2 * fit.eps_max * np.sqrt(x * fit.b_noise) / (x + fit.b_noise)
    np.testing.assert_allclose(y, expect, rtol=1e-12)
    sgd1 = next(ln for ln in left.get_lines() if ln.get_label().startswith("SGD law, alpha = 1 "))
    x1, y1 = sgd1.get_data()
    f1 = st.eps_max_fit("sgd(alpha=1)")
    np.testing.assert_allclose(y1, f1.eps_max / (1 + f1.b_noise / x1), rtol=1e-12)
    curves = [ln for ln in left.get_lines() if "law" in ln.get_label() or "B_noise" in ln.get_label()]
    styles = {(ln.get_color(), str(ln.get_linestyle())) for ln in curves}
    assert len(styles) == len(curves) == 4
    vline = next(ln for ln in left.get_lines() if ln.get_label().startswith("B_noise"))
    assert vline.get_xdata()[0] == pytest.approx(st.b_noise)
    # the optimal lr markers are at the analysis' optimal lrs
    stars = next(c for c in left.collections if c.get_label().startswith("optimal lr"))
    rows = [r for r in st.rows if np.isfinite(r.optimal_lr)]
    np.testing.assert_allclose(stars.get_offsets(), [[r.batch_size, r.optimal_lr] for r in rows])


def test_stage_figure_right_panel_is_the_eq22_fit(geometric):
    st = geometric.stages[1]
    left, right, _ = _axes(stage_figure(geometric, st))
    assert right.get_xlabel().startswith("1/E  [1/examples]")
    assert right.get_ylabel().startswith("1/S  [1/steps]")
    pts = right.collections[0].get_offsets()
    rows = [r for r in st.rows if np.isfinite(r.steps)]
    np.testing.assert_allclose(pts, [[1 / r.examples, 1 / r.steps] for r in rows])
    (line,) = [ln for ln in right.get_lines() if ln.get_label().startswith("Eq 22")]
    x, y = line.get_data()
    np.testing.assert_allclose(y, 1 / st.b_noise_fit.s_min - st.b_noise * x, rtol=1e-12)
    texts = " ".join(t.get_text() for t in right.texts)
    assert f"B_noise = {st.b_noise:.4g} examples" in texts
    assert "95% interval" in texts
    assert right.get_legend() is not None


def test_linear_grid_gets_linear_axes_and_an_empty_stage_says_why(linear):
    left, right, _ = _axes(stage_figure(linear, linear.stages[0]))
    assert left.get_xscale() == "linear" and left.get_yscale() == "linear"
    empty = stage_figure(linear, 0.6)
    texts = " ".join(t.get_text().replace("\n", " ") for ax in empty.axes for t in ax.texts)
    assert "no trial reached target loss 0.6" in texts
    assert "no batch size has S(B) and E(B)" in texts


def test_normalized_heatmap_has_columns_peaking_at_one(geometric):
    fig = stage_figure(geometric, geometric.stages[0], normalize=True)
    left, _, cbar = _axes(fig)
    mesh = next(c for c in left.collections if isinstance(c, QuadMesh))
    z = np.ma.filled(mesh.get_array(), np.nan).reshape(geometric.stages[0].grid.mean.shape)
    np.testing.assert_allclose(np.nanmax(z, axis=0), 1.0)
    assert "best at this B" in cbar.get_ylabel()


def test_b_noise_figure(geometric, linear):
    fig = b_noise_figure(geometric)
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("target training loss")
    assert ax.get_ylabel() == "B_noise [examples]"
    lo, hi = ax.get_xlim()
    assert lo > hi  # decreasing target to the right: training progresses to the right
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), geometric.trend.target_loss)
    np.testing.assert_allclose(line.get_ydata(), geometric.trend.b_noise)
    assert "B_noise (Eq 22)" in ax.get_legend().get_texts()[0].get_text()
    # a stage without an estimate is marked, not plotted as a number
    ax2 = b_noise_figure(linear).axes[0]
    assert ax2.get_lines()[0].get_xdata().tolist() == [1.0]
    assert any("stage without an estimate" in t.get_text() for t in ax2.get_legend().get_texts())


def test_saved_files_are_non_empty_png_and_pdf(linear, tmp_path):
    files = save_sweep_figures(linear, tmp_path)
    assert set(files) == {"stage_1", "stage_0p6", "b_noise_vs_target"}
    assert stage_stem(1.5) == "stage_1p5" and stage_stem(1e-5) == "stage_1em05"
    for png, pdf in files.values():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
    # size in pixels: 14 x 6.2 in at 150 dpi
    import matplotlib.image as mpimg

    img = mpimg.imread(files["stage_1"][0])
    assert img.shape[:2] == (930, 2100)
    assert img[..., :3].std() > 0.1  # not a blank canvas
    assert save_figure(b_noise_figure(linear), tmp_path / "sub" / "x") == [
        tmp_path / "sub" / "x.png",
        tmp_path / "sub" / "x.pdf",
    ]


def test_unknown_stage_is_an_error(geometric):
    with pytest.raises(ValueError, match="no stage with target loss 0.123"):
        stage_figure(geometric, 0.123)


def test_cells_never_tried_are_told_apart_from_cells_without_a_usable_trial():
    frame = synthetic_frame("adam", seed=2, rounds=2, target_loss=(2.0,), max_steps=3000)
    lrs = np.sort(frame["lr"].unique())
    frame = frame[~((frame["batch_size"] >= 256) & frame["lr"].isin(lrs[:3]))]  # a per-batch-size lr grid
    res = analyze(frame, n_boot=0)
    g = res.stages[0].grid
    assert (g.n_trials == 0).any() and (~np.isfinite(g.mean) & (g.n_trials > 0)).any()
    left, _, _ = _axes(stage_figure(res, 2.0))
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert "not tried" in labels and "no usable trial (diverged / not reached)" in labels
    meshes = [c for c in left.collections if isinstance(c, QuadMesh)]
    gray = np.ma.getmaskarray(meshes[1].get_array()).reshape(g.mean.shape)
    np.testing.assert_array_equal(~gray, ~np.isfinite(g.mean) & (g.n_trials > 0))


def test_language_model_batches_are_labelled_in_sequences():
    frame = synthetic_frame("adam", seed=2, rounds=2, batch_unit="sequences")
    result = analyze(frame, n_boot=50)
    assert result.batch_unit == "sequences"
    fig = stage_figure(result, result.stages[0].target_loss)
    assert "sequences" in fig.axes[0].get_xlabel()


def test_an_interval_reaching_zero_is_drawn_to_zero_on_a_linear_axis(geometric):
    from dataclasses import replace

    cis = list(geometric.trend.b_noise_ci)
    cis[0] = (-5.0, cis[0][1])  # Eq 22's interval can reach below zero with few batch sizes
    wide = replace(geometric, trend=replace(geometric.trend, b_noise_ci=tuple(cis)))
    ax = b_noise_figure(wide).axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    bars = ax.containers[0].lines[2][0].get_segments()  # the error bars, one segment per stage
    assert bars[0][0][1] == 0.0  # the first stage's bar starts at 0, not at its estimate
