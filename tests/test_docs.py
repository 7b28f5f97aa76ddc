"""The documentation is executed: every ```console block of README.md and docs/ runs, and its output must
match what the block shows; and `mkdocs build --strict` must pass.

A console block is a sequence of ``$ command`` lines, each followed by the output it prints (stdout and
stderr together, as a terminal shows them). Supported commands:

- ``$ surge ...``: runs the command line of this checkout (``python -m surge.cli.main``) in a fresh
  temporary folder, with ``COLUMNS=120`` so that Rich tables and wrapped lines have a fixed width. The
  exit code must be 0, or 2 when the block shows an ``error:`` line.
- ``$ cat FILE``: prints FILE; when FILE does not exist yet, the block's output lines ARE the file and
  are written to it (this is how a block brings its input data: ``$ cat steps.csv`` and the rows).
- ``$ ls [DIR]``: the sorted names in DIR.

Matching is whitespace-normalised (runs of blanks are one space, blank lines are ignored). A line ``...``
matches any number of lines (none included); ``...`` inside a line matches any text. Files a block needs
that no line of it can create come from ``FIXTURES`` below (a synthetic sweep store).

A block preceded by ``<!-- docs-test: skip REASON -->`` is not run (for the few that take minutes); the
reason is shown as the skip reason.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import surge

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(surge.__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SKIP_MARK = re.compile(r"<!--\s*docs-test:\s*skip\s+(.+?)\s*-->")
COMMAND_TIMEOUT_S = 600


# ---------------------------------------------------------------------------------------------------------
# Parsing the Markdown


@dataclass
class Command:
    argv: list[str]  # the command line, split as a shell would (comments dropped)
    line: str  # as written, for messages
    expected: list[str] = field(default_factory=list)  # the output lines the block shows


@dataclass
class Block:
    path: Path
    lineno: int  # 1-based line of the opening fence
    commands: list[Command]
    skip: str | None  # the reason, when marked skip

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.lineno}"


def parse_blocks(path: Path) -> list[Block]:
    """Every ```console block of a Markdown file, with its commands and their shown output."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```console":
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise AssertionError(f"{path}:{start + 1}: console block is not closed")
            skip = None
            j = start - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            if j >= 0 and (m := SKIP_MARK.search(lines[j])):
                skip = m.group(1)
            blocks.append(Block(path, start + 1, parse_commands(body, f"{path}:{start + 1}"), skip))
        i += 1
    return blocks


def parse_commands(body: list[str], where: str) -> list[Command]:
    commands: list[Command] = []
    for raw in body:
        if raw.startswith("$ "):
            text = raw[2:]
            argv = shlex.split(text, comments=True)
            if not argv:
                raise AssertionError(f"{where}: empty command line {raw!r}")
            commands.append(Command(argv, text.strip()))
        elif not commands:
            if raw.strip():
                raise AssertionError(f"{where}: output before the first '$ ' command: {raw!r}")
        else:
            commands[-1].expected.append(raw)
    if not commands:
        raise AssertionError(f"{where}: a console block without a '$ ' command")
    return commands


# ---------------------------------------------------------------------------------------------------------
# Matching output against a block


def _normalise(lines: list[str]) -> list[str]:
    out = []
    for ln in lines:
        ln = " ".join(ln.split())
        if ln:
            out.append(ln)
    return out


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = expected.split("...")
    return re.compile(".*".join(re.escape(p) for p in parts), re.DOTALL)


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` fits ``expected`` (whitespace-normalised; ``...`` lines and ``...`` in lines)."""
    exp = _normalise(expected)
    act = _normalise(actual)
    pats = [None if e == "..." else _line_pattern(e) for e in exp]
    # reach[j] after processing i expected lines: actual[:j] is matched by exp[:i]
    reach = [False] * (len(act) + 1)
    reach[0] = True
    for pat in pats:
        new = [False] * (len(act) + 1)
        if pat is None:  # any number of lines
            seen = False
            for j in range(len(act) + 1):
                seen = seen or reach[j]
                new[j] = seen
        else:
            for j in range(len(act)):
                if reach[j] and pat.fullmatch(act[j]):
                    new[j + 1] = True
        reach = new
    return reach[len(act)]


def mismatch_report(cmd: Command, actual: list[str]) -> str:
    return (
        f"output of '$ {cmd.line}' differs from the docs\n--- the docs show:\n"
        + "\n".join(cmd.expected)
        + "\n--- a fresh run printed:\n"
        + "\n".join(actual)
    )


# ---------------------------------------------------------------------------------------------------------
# Fixtures: files a block uses that none of its own lines creates


def _synthetic_store(path: Path) -> None:
    """The synthetic sweep of docs/analysis.md: Adam law, B_noise 64 / 85.3 / 128, eps_max 1e-3, 5 rounds."""
    from surge.analysis import synthetic_frame, write_synthetic_store

    frame = synthetic_frame(
        "adam",
        b_noise=64,
        eps_max=1e-3,
        rounds=5,
        target_loss=(2.0, 1.5, 1.0),
        diverge_above=3.0,
        max_steps=20000,
        seed=0,
    )
    write_synthetic_store(frame, path)


FIXTURES = {
    "sweep.db": _synthetic_store,
}


# ---------------------------------------------------------------------------------------------------------
# Running a block


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("SURGE_DEBUG", "FORCE_COLOR", "CLICOLOR_FORCE"):
        env.pop(key, None)
    env.update(
        COLUMNS="120",
        LINES="50",
        NO_COLOR="1",
        TERM="dumb",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        MPLBACKEND="Agg",
    )
    return env


def run_command(cmd: Command, cwd: Path) -> tuple[int, list[str]]:
    """Run one documented command in ``cwd``; returns (exit code, printed lines)."""
    name, *args = cmd.argv
    if name == "surge":
        proc = subprocess.run(
            [sys.executable, "-m", "surge.cli.main", *args],
            check=False,
            cwd=cwd,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        return proc.returncode, proc.stdout.splitlines()
    if name == "cat":
        assert len(args) == 1, f"'$ {cmd.line}': cat takes one file here"
        target = cwd / args[0]
        if not target.exists():
            assert not any("..." in ln for ln in cmd.expected), (
                f"'$ {cmd.line}' creates {args[0]} from the lines shown, so they must be complete (no '...')"
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n".join(cmd.expected) + "\n")
        return 0, target.read_text().splitlines()
    if name == "ls":
        assert len(args) <= 1, f"'$ {cmd.line}': ls takes at most one folder here"
        folder = cwd / (args[0] if args else ".")
        return 0, sorted(os.listdir(folder))
    raise AssertionError(f"'$ {cmd.line}': only surge, cat and ls are run by the docs tests")


def _needed_fixtures(block: Block) -> set[str]:
    words = {w for cmd in block.commands for w in cmd.argv[1:]}
    return {name for name in FIXTURES if name in words}


BLOCKS = [b for path in DOC_FILES for b in parse_blocks(path)]


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_console_block(block: Block, tmp_path: Path) -> None:
    if block.skip:
        pytest.skip(f"marked in the docs: {block.skip}")
    trains = any(c.argv[:3] == ["surge", "sweep", "run"] or c.argv[:2] == ["surge", "demo"] for c in block.commands)
    if trains and not (importlib.util.find_spec("torch") and importlib.util.find_spec("mlxtend")):
        pytest.skip("this block trains: it needs the torch and data extras")
    for name in _needed_fixtures(block):
        FIXTURES[name](tmp_path / name)
    for cmd in block.commands:
        code, printed = run_command(cmd, tmp_path)
        wants_error = any(ln.lstrip().startswith("error:") for ln in cmd.expected)
        assert code == (2 if wants_error else 0), f"'$ {cmd.line}' exited with {code}\n" + "\n".join(printed[-40:])
        assert output_matches(cmd.expected, printed), mismatch_report(cmd, printed)


def test_the_docs_have_console_blocks_and_few_skips() -> None:
    surge_commands = [c for b in BLOCKS for c in b.commands if c.argv[0] == "surge"]
    assert len(BLOCKS) >= 10 and len(surge_commands) >= 20, (len(BLOCKS), len(surge_commands))
    skipped = [b.id for b in BLOCKS if b.skip]
    assert len(skipped) <= max(2, len(BLOCKS) // 10), f"too many skipped console blocks: {skipped}"


# ---------------------------------------------------------------------------------------------------------
# The matcher and the parser themselves


def test_matcher_wildcards_and_whitespace() -> None:
    shown = ["a   b", "...", "x = 0.12..., done"]
    assert output_matches(shown, ["a b", "x = 0.1234, done"])
    assert output_matches(shown, ["  a b  ", "", "one", "two", "x = 0.125, done"])
    assert not output_matches(shown, ["a b", "x = 0.2, done"])
    assert not output_matches(shown, ["a c", "x = 0.12, done"])
    assert not output_matches(["a", "b"], ["a", "b", "c"])  # no silent extra output
    assert not output_matches(["a", "b", "c"], ["a", "b"])
    assert output_matches(["..."], [])
    assert output_matches(["a...", "b"], ["abc", "b"])
    assert not output_matches(["a(1)"], ["a1"])  # regex characters are literal


def test_parser_reads_commands_output_and_skip_marks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```console\n$ surge law adam --b-noise 64   # a comment\nout 1\n\nout 2\n$ cat f.csv\nx,y\n```\n\n"
        "<!-- docs-test: skip takes an hour -->\n```console\n$ surge demo\n```\n"
    )
    first, second = parse_blocks(page)
    assert first.lineno == 3 and first.skip is None
    assert [c.argv for c in first.commands] == [["surge", "law", "adam", "--b-noise", "64"], ["cat", "f.csv"]]
    assert first.commands[0].expected == ["out 1", "", "out 2"]
    assert second.skip == "takes an hour"
    page.write_text("```console\noutput first\n$ surge law\n```\n")
    with pytest.raises(AssertionError, match="output before the first"):
        parse_blocks(page)


def test_cat_creates_a_missing_file_from_the_block(tmp_path: Path) -> None:
    cmd = Command(["cat", "d.csv"], "cat d.csv", ["a,b", "1,2"])
    assert run_command(cmd, tmp_path) == (0, ["a,b", "1,2"])
    assert (tmp_path / "d.csv").read_text() == "a,b\n1,2\n"
    partial = Command(["cat", "e.csv"], "cat e.csv", ["a,b", "..."])
    with pytest.raises(AssertionError, match="must be complete"):
        run_command(partial, tmp_path)


# ---------------------------------------------------------------------------------------------------------
# The site


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="the docs extra is not installed: pip install -e '.[docs]'")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        check=False,
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert (tmp_path / "site" / "equations" / "index.html").exists()
    api = (tmp_path / "site" / "api" / "fit" / "index.html").read_text()
    assert "fit_b_noise" in api  # the reference is generated from the docstrings


def test_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 260
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme):
        assert (ROOT / image).is_file(), f"README shows {image}, which is not in the repository"
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), f"README links {link}, which does not exist"


def test_citation_file_cites_the_paper_and_the_package() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with the docs extra (mkdocs)")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    paper = cff["preferred-citation"]
    assert paper["title"] == "Surge Phenomenon in Optimal Learning Rate and Batch Size Scaling"
    assert [a["family-names"] for a in paper["authors"]] == [
        "Li",
        "Zhao",
        "Zhang",
        "Sun",
        "Wu",
        "Jiao",
        "Wang",
        "Liu",
        "Fang",
        "Xue",
        "Tao",
        "Cui",
        "Wang",
    ]
    assert paper["year"] == 2024 and "NeurIPS 2024" in paper["conference"]["name"]
    assert any(i["value"] == "arXiv:2405.14578" for i in paper["identifiers"])
    assert "Copyright (c) 2026 the surge developers" in (ROOT / "LICENSE").read_text()
