import json
import os

import pytest
from hypothesis import settings

from surge.cli.main import main

# Property tests draw the same examples on every run (a CI failure is reproducible); set
# HYPOTHESIS_PROFILE=explore to draw new ones.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def run_cli(capsys):
    """Run ``surge ARGS``; return (exit code, stdout, stderr)."""

    def run(*args: str):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def run_json(run_cli):
    """Run ``surge ARGS --json``; assert success and exactly one JSON object on stdout."""

    def run(*args: str):
        code, out, err = run_cli(*args, "--json")
        assert code == 0, err
        assert out.count("\n") == 1, out
        return json.loads(out)

    return run
