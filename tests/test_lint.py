"""ruff keeps the code clean and uniformly formatted: `ruff check` and `ruff format --check` (the settings
are in pyproject.toml). Fix with `ruff check --fix . && ruff format .`."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["src", "tests", "benchmarks"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed (it is in the 'test' extra: pip install -e '.[test]')")
    return subprocess.run([exe, *args, *PATHS], cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_check():
    res = _ruff("check", "--no-cache")
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format():
    res = _ruff("format", "--check", "--no-cache")
    assert res.returncode == 0, res.stdout + res.stderr


def test_long_modules_say_why():
    """A module over about 400 lines states at its top why it is one module, with its size kept current."""
    import ast
    import re

    long = []
    for path in sorted((ROOT / "src" / "surge").rglob("*.py")):
        text = path.read_text()
        n = text.count("\n")
        if n <= 420:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        m = re.search(r"Why one module of ~(\d+) lines:", doc)
        if m is None:
            long.append(f"{path.relative_to(ROOT)}: {n} lines and no 'Why one module of ~N lines:' in its docstring")
        elif abs(int(m.group(1)) - n) > 0.15 * n:
            long.append(f"{path.relative_to(ROOT)}: says ~{m.group(1)} lines, has {n}")
    assert not long, "\n".join(long)
