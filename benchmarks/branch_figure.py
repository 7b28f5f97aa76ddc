"""Draw the fitted optimal learning rate against batch size, with 95 % bootstrap intervals, for sweep stores
(e.g. a branch store and a scratch store kept by ``benchmarks/branch.py --keep DIR``).

    PYTHONPATH=src python benchmarks/branch_figure.py OUT.png STORE[:LABEL] [STORE[:LABEL] ...]

Every stage of every store is one line; the grid argmax is drawn as open markers beside it.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from surge.analysis import analyze, load_store  # noqa: E402


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    out, stores = argv[0], argv[1:]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for k, item in enumerate(stores):
        path, _, label = item.partition(":")
        a = analyze(load_store(path), lr_estimate="fitted")
        for j, st in enumerate(a.stages):
            b = np.array([r.batch_size for r in st.rows], dtype=float)
            lr = np.array([r.fitted_lr for r in st.rows])
            lo = np.array([r.fitted_lr_ci[0] for r in st.rows])
            hi = np.array([r.fitted_lr_ci[1] for r in st.rows])
            shift = 1.0 + 0.04 * (2 * k + j)  # side by side
            ok = np.isfinite(lr)
            yerr = np.vstack([lr - lo, np.where(np.isfinite(hi), hi, lr * 3) - lr])[:, ok]
            line = ax.errorbar(
                b[ok] * shift,
                lr[ok],
                yerr=yerr,
                marker="o",
                capsize=3,
                label=f"{label or path}, loss {st.target_loss:g}",
            )
            grid = np.array([r.optimal_lr for r in st.rows])
            ax.plot(b * shift, grid, marker="s", mfc="none", ls="none", color=line[0].get_color(), alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("optimal learning rate (fitted; squares: grid argmax)")
    ax.set_title("cnn-mnist-sample, sign descent: optimal lr with 95 % intervals")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
