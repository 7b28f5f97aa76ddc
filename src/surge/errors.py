"""The errors surge raises on purpose.

Two kinds reach a user of the CLI as one line on stderr, without a traceback:

- :class:`SurgeError` (and its subclasses): the input is wrong (an argument, a file, a store, a spec).
  The message names the argument, shows the value and says what is allowed. CLI exit code 2.
- :class:`EstimationError`: the input is valid but the data cannot give the estimate asked for (too
  few points, a fit that did not converge). CLI exit code 1.

Any other exception is a bug in surge and is shown as one (exit code 1 and a hint to rerun with
``SURGE_DEBUG=1`` for the traceback). ``SurgeError`` derives from ``ValueError`` so that code written
against the earlier ``ValueError`` contract keeps working.
"""

from __future__ import annotations


class SurgeError(ValueError):
    """Bad input: a wrong argument, file, store or spec. The CLI prints it as one line, exit code 2.

    Attributes:
        exit_code: the CLI's exit status for this error, 2 (class attribute).
    """

    exit_code = 2


class SurgeTypeError(SurgeError, TypeError):
    """Bad input of the wrong type (also a ``TypeError``). CLI exit code 2."""


class InputFileError(SurgeError, FileNotFoundError):
    """An input path that does not exist or cannot be read (also a ``FileNotFoundError``). Exit code 2."""


class OutputError(SurgeError):
    """An output path that cannot be written; raised before any work starts. CLI exit code 2."""


class EstimationError(SurgeError):
    """Valid input from which the estimate cannot be made (too few points, a failed fit). Exit code 1.

    Attributes:
        exit_code: the CLI's exit status for this error, 1 (class attribute).
    """

    exit_code = 1
