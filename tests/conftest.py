import json

import pytest

from surge.cli.main import main


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
