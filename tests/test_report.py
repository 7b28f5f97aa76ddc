"""surge.report: Markdown + one self-contained HTML page + JSON, stating per stage B_noise, eps_max, the law
comparison, whether the lr falls past B_noise with its evidence, and the diverged / censored counts."""

import base64
import json
import re

import numpy as np
import pytest

from surge.analysis import analyze, synthetic_frame
from surge.report import render_html, render_markdown, summary_dict, write_report


@pytest.fixture(scope="module")
def awkward():
    """An Adam sweep with diverged trials, one batch size that all diverged, and a last stage no trial reached."""
    frame = synthetic_frame("adam", seed=2, rounds=3, diverge_above=3.0, target_loss=(2.0, 1.5, 1.0))
    dead = frame["batch_size"] == 4
    frame.loc[dead, ["status", "reached", "steps", "examples", "loss_decrease"]] = [
        "diverged",
        False,
        np.nan,
        np.nan,
        np.nan,
    ]
    last = frame["target_loss"] == 1.0
    frame.loc[last & ~dead, ["reached", "steps", "examples", "loss_decrease"]] = [False, np.nan, np.nan, np.nan]
    return analyze(frame, n_boot=100)


@pytest.fixture(scope="module")
def written(awkward, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, write_report(awkward, out)


def test_write_report_writes_every_file(written):
    out, files = written
    assert (
        files.markdown == out / "report.md"
        and files.html == out / "report.html"
        and files.json == out / "analysis.json"
    )
    assert all(p.is_file() and p.stat().st_size > 0 for p in files.all())
    assert sorted(files.figures) == ["b_noise_vs_target", "stage_1", "stage_1p5", "stage_2"]
    assert files.stage_files(1.5) == [out / "stage_1p5.png", out / "stage_1p5.pdf"]


def test_markdown_states_the_answers_per_stage(awkward, written):
    out, files = written
    md = files.markdown.read_text()
    st = awkward.stage(2.0)
    assert "## Stage: target loss 2" in md
    assert (
        f"**B_noise (Eq 22)** = {st.b_noise:.4g} examples, "
        f"95% interval [{st.b_noise_ci[0]:.4g}, {st.b_noise_ci[1]:.4g}]" in md
    )
    assert f"Adam (Eq 23) {st.eps_max['adam']:.4g}" in md
    assert "SGD, alpha = 1 (Eq 24)" in md and "SGD, alpha = 0.5 (Eq 24)" in md
    assert f"best is **{st.best_law}**" in md
    assert "| law | eps_max | B_noise | alpha | k | RMS log residual | AICc | ΔAICc | status |" in md
    assert (
        "**Does the optimal learning rate fall past B_noise?** "
        + {"yes": "yes", "no": "no", "inconclusive": "inconclusive", "untestable": "untestable"}[st.falls.verdict]
        in md
    )
    assert st.falls.message in md  # the evidence: the intervals and the slope
    assert f"{st.n_diverged} diverged (before the target, or in the N steps after it); {st.n_censored} censored" in md
    # figures linked relative to the report
    assert "](stage_2.png)" in md and "](b_noise_vs_target.png)" in md and "(PDF: `stage_2.pdf`)" in md
    # summary table, one row per stage
    assert md.count("\n| 2 | ") + md.count("\n| 1.5 | ") + md.count("\n| 1 | ") == 3


def test_report_explains_the_all_diverged_batch_size_and_the_unreached_stage(awkward, written):
    md = written[1].markdown.read_text()
    assert "B = 4: all 51 trials diverged: no optimal learning rate" in md
    assert "**Nothing to estimate at this stage.** no trial reached target loss 1" in md
    assert "raise the budget (max_steps) or pick a higher target" in md
    assert "untestable" in md  # the unreached stage cannot say whether the lr falls
    assert "never averaged in" in md


def test_html_is_one_self_contained_page(written):
    page = written[1].html.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert base64.b64decode(srcs[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<link" not in page and "<script" not in page and "http" not in page
    assert "<strong>B_noise (Eq 22)</strong>" in page and "<table>" in page
    assert "&lt;" not in page.split("<body>")[0]  # the head is plain


def test_html_escapes_text(awkward):
    page = render_html(awkward, figures=None)
    assert "<img" not in page  # no figures given: none embedded
    assert "B_noise" in page


def test_json_summary_has_the_documented_keys(awkward, written):
    out, files = written
    data = json.loads(files.json.read_text())
    assert data == json.loads(json.dumps(summary_dict(awkward, files)))
    assert [s["target_loss"] for s in data["stages"]] == [2.0, 1.5, 1.0]
    s0 = data["stages"][0]
    for key in (
        "target_loss",
        "b_noise",
        "b_noise_ci",
        "eps_max",
        "batch_size",
        "optimal_lr",
        "optimal_lr_ci",
        "best_law",
        "files",
        "falls_past_b_noise",
        "n_diverged",
        "n_censored",
        "counts",
        "messages",
    ):
        assert key in s0, key
    assert set(s0["eps_max"]) == {"adam", "sgd(alpha=1)", "sgd(alpha=0.5)"}
    assert s0["files"] == [str(out / "stage_2.png"), str(out / "stage_2.pdf")]
    assert s0["optimal_lr"][0] is None  # B = 4 all diverged: null, not NaN
    empty = data["stages"][2]
    assert empty["b_noise"] is None and empty["best_law"] is None and empty["falls_past_b_noise"] == "untestable"
    assert data["files"]["html"] == str(out / "report.html")


def test_markdown_without_figures_has_no_image_links(awkward):
    md = render_markdown(awkward)
    assert "![" not in md and "## Summary" in md


def test_how_the_numbers_are_made_follows_the_settings():
    df = synthetic_frame(rounds=4, seed=1)
    default = render_markdown(analyze(df, n_boot=20))
    assert "Eq 22 on those S(B), by least squares of 1/S on 1/E" in default
    other = render_markdown(analyze(df, n_boot=20, steps_rule="optimal", b_noise_method="nonlinear"))
    assert "S(B) at each batch size's optimal learning rate" in other
    assert "nonlinear least squares of log S = log S_min + log(1 + B_noise/B)" in other
    assert "least squares of 1/S on 1/E" not in other
