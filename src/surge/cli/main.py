"""The ``surge`` command: wiring only. Each command group lives in its own module.

Bad input (:class:`surge.errors.SurgeError`, and Click's usage errors) reaches the user as one line on
stderr with exit code 2; an estimate the data cannot give (:class:`surge.errors.EstimationError`) as one
line with exit code 1. Any other exception is a bug in surge: one line that says so, exit code 1.
``SURGE_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer

from surge import __version__
from surge.cli import analyze, simulate, sweep
from surge.cli import demo as demo_cmd
from surge.cli import fit as fit_cmd
from surge.cli import law as law_cmd
from surge.cli import recommend as recommend_cmd
from surge.errors import SurgeError

app = typer.Typer(
    name="surge",
    help="Optimal learning rate vs batch size for Adam-style optimizers (the surge phenomenon).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(law_cmd.app, name="law")
app.command("recommend")(recommend_cmd.recommend)
app.add_typer(fit_cmd.app, name="fit")
app.command("analyze")(analyze.analyze)
app.command("demo")(demo_cmd.demo)
app.add_typer(sweep.app, name="sweep")
app.add_typer(simulate.app, name="simulate")
app.command("measure")(__import__("surge.cli.measure", fromlist=["measure"]).measure)


def _version(value: bool) -> None:
    if value:
        print(f"surge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """surge: the paper's laws, fits and experiments for learning-rate / batch-size scaling."""


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """Typer >= 0.22 raises its own vendored Click exceptions; older Typer raises Click's."""
    types: list[type[BaseException]] = []
    if hasattr(typer, "TyperException"):
        types.append(typer.TyperException)
    try:
        import click

        types.append(click.ClickException)
    except ImportError:
        pass
    return tuple(types)


_USAGE_ERRORS = _usage_error_types()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (also used by the tests)."""
    debug = os.environ.get("SURGE_DEBUG") == "1"
    if not debug:  # numeric and plotting warnings are not for users: results are checked for finiteness
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="matplotlib")
    try:
        result = app(args=argv, prog_name="surge", standalone_mode=False)
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except _USAGE_ERRORS as exc:
        if debug:
            raise
        if not exc.format_message().strip():  # e.g. help shown for a group called without a command
            return 2
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        print(f"error: {_one_line(exc.format_message())}{where}", file=sys.stderr)
        return 2
    except SurgeError as exc:
        if debug:
            raise
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so, never dress it up as a user mistake
        if debug:
            raise
        print(
            f"internal error (a bug in surge, please report it): {type(exc).__name__}: {_one_line(str(exc))}; "
            "rerun with SURGE_DEBUG=1 for the traceback",
            file=sys.stderr,
        )
        return 1
    # with standalone_mode=False, a command's `raise typer.Exit(n)` comes back as the return value
    return result if isinstance(result, int) else 0


def run() -> None:  # pragma: no cover - thin wrapper for the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
