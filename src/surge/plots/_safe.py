"""Drawing that never loses results: a figure that cannot be drawn becomes a note, not an exception.

The numbers are computed and written before any figure is drawn; a figure whose data cannot be plotted
(every value <= 0 on a log axis, a single point, nothing finite) is left out with one sentence saying
why, and the command goes on. Matplotlib's own warnings are not shown to users of surge.
"""

from __future__ import annotations

import warnings
from typing import Callable


def draw_safely(draw: Callable[[], object], what: str) -> tuple[object | None, str | None]:
    """Call ``draw()``; return (its result, None), or (None, a sentence saying why ``what`` was not drawn).

    Warnings raised while drawing are silenced; on an exception every pyplot figure is closed.

    Args:
        draw: a callable with no arguments that draws (and usually saves) a figure.
        what: the figure's name for the note, e.g. ``"the B_noise figure"``.

    Returns:
        tuple (result, note): ``(draw(), None)`` when it succeeded, else ``(None, note)`` with a one-line
            note naming ``what`` and the error.

    Raises:
        MemoryError: re-raised from ``draw()``; any other ``Exception`` becomes the note.
        KeyboardInterrupt: re-raised from ``draw()``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return draw(), None
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # matplotlib raises ValueError, TypeError, ... on data it cannot show
        try:
            import matplotlib.pyplot as plt

            plt.close("all")
        except Exception:  # pragma: no cover - matplotlib missing or broken
            pass
        return None, f"{what} could not be drawn ({' '.join(str(exc).split())}); the numbers are written without it"
