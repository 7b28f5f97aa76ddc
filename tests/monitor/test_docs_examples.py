"""The runnable examples of docs/monitor.md (Python blocks that start with ``import``) run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "monitor.md"
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S) if b.startswith("import")]


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_doc_example_runs(code, tmp_path, monkeypatch):
    first = code.split("\n", 1)[0]
    for module in ("lightning", "transformers"):
        if module in first or f"import {module}" in code.split("from surge")[0]:
            pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs_example"})


def test_there_are_three_runnable_examples():
    assert len(BLOCKS) == 3
