"""Figures. Every function takes a result object, only draws, and returns a ``matplotlib.figure.Figure``.

- :mod:`surge.plots.figure1`: the paper's Figure 1 from the simulator (``plot_figure1``) and the stages of a
  simulated training run (``plot_training``).
- :mod:`surge.plots.sweep_figures`: the paper's Figures 2-4 from a sweep analysis.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, so nothing here touches pyplot's
global state or needs a display.
"""

from surge.plots.figure1 import plot_figure1, plot_training

__all__ = ["plot_figure1", "plot_training"]
