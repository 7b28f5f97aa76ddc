"""Every public function and method outside the CLI documents itself in the one docstring style the API
pages render (Google style, ``docstring_style: google`` in mkdocs.yml): an ``Args:`` section naming each
parameter, ``Returns:`` (or ``Yields:``) when it returns a value, ``Raises:`` when it raises, and no
NumPy-style underlined sections. The CLI's commands are documented by their ``--help`` text instead.

Run one module's check with ``pytest tests/test_docstrings.py -k engine/optim``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "surge"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts)
SECTION = re.compile(r"^\s*(Args|Returns|Yields|Raises|Attributes|Examples?|Notes?|Source|Warns):\s*$", re.M)
NUMPY_UNDERLINE = re.compile(r"^\s*-{3,}\s*$", re.M)
SKIPPED_DECORATORS = {"property", "cached_property", "functools.cached_property", "overload", "typing.overload"}


def _own_nodes(fn: ast.AST):
    """The nodes of a function's own body: nested functions, lambdas and classes are theirs, not its."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


def _section(doc: str, name: str) -> str | None:
    """The text of one Google-style section, or None when the docstring has none."""
    parts = SECTION.split(doc)
    for i in range(1, len(parts) - 1, 2):
        if parts[i] == name:
            return parts[i + 1]
    return None


def _arg_names(section: str) -> set[str]:
    """The parameter names an ``Args:`` section documents (``name:`` or ``name (type):`` entries)."""
    indents = [len(m.group(1)) for m in re.finditer(r"^( +)\S", section, re.M)]
    if not indents:
        return set()
    first = min(indents)
    entry = re.compile(rf"^ {{{first}}}\**([A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:", re.M)
    return {m.group(1) for m in entry.finditer(section)}


def _problems(fn: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str) -> list[str]:
    doc = ast.get_docstring(fn) or ""
    if not doc.strip():
        return [f"{qualname}: no docstring"]
    out = []
    if NUMPY_UNDERLINE.search(doc):
        out.append(f"{qualname}: NumPy-style underlined section (use Google style: 'Args:', 'Returns:')")
    a = fn.args
    params = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
    params += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    if params:
        section = _section(doc, "Args")
        if section is None:
            out.append(f"{qualname}: no 'Args:' section for {params}")
        else:
            documented = _arg_names(section)
            if missing := [p for p in params if p not in documented]:
                out.append(f"{qualname}: 'Args:' does not name {missing}")
            if extra := sorted(documented - set(params)):
                out.append(f"{qualname}: 'Args:' names {extra}, which are not parameters")
    nodes = list(_own_nodes(fn))
    if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in nodes):
        if _section(doc, "Yields") is None:
            out.append(f"{qualname}: a generator without a 'Yields:' section")
    elif any(isinstance(n, ast.Return) and n.value is not None for n in nodes):
        if _section(doc, "Returns") is None:
            out.append(f"{qualname}: returns a value but has no 'Returns:' section")
    if any(isinstance(n, ast.Raise) and n.exc is not None for n in nodes) and _section(doc, "Raises") is None:
        out.append(f"{qualname}: raises but has no 'Raises:' section")
    return out


def _public_functions(tree: ast.Module):
    """(qualified name, node) of the module's public functions and its public classes' public methods."""

    def visit(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name.startswith("_"):
                    continue
                if {ast.unparse(d) for d in node.decorator_list} & SKIPPED_DECORATORS or any(
                    ast.unparse(d).endswith((".setter", ".deleter")) for d in node.decorator_list
                ):
                    continue
                yield prefix + node.name, node
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                yield from visit(node.body, prefix + node.name + ".")

    yield from visit(tree.body, "")


def audit(path: Path) -> list[str]:
    """Every docstring problem of one module, one line each."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(ROOT)
    return [f"{rel}:{node.lineno} {line}" for name, node in _public_functions(tree) for line in _problems(node, name)]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE).with_suffix("")))
def test_public_docstrings(path):
    problems = audit(path)
    assert not problems, "\n".join(problems)


def test_audit_catches_each_kind(tmp_path):
    """The checker is not vacuous: each kind of gap in a module it is shown is reported."""
    src = tmp_path / "m.py"
    src.write_text(
        "def a(x):\n    return x\n\n"
        'def b(x):\n    """B.\n\n    Args:\n        y: no such parameter.\n    """\n    raise ValueError(x)\n\n'
        'def c(x):\n    """C.\n\n    Parameters\n    ----------\n    x : int\n    """\n\n'
        'def d(n):\n    """D.\n\n    Args:\n        n: count.\n    """\n    yield n\n\n'
        "def _private(x):\n    return x\n\n"
        'def e(x, *rest, **extra):\n    """E.\n\n    Args:\n        x: a thing, with a long description\n'
        "            that wraps: onto a second line.\n        *rest: more.\n        **extra: options.\n\n"
        '    Returns:\n        x.\n    """\n    return x\n'
    )
    lines = audit_text(src)
    assert "a: no docstring" in lines
    assert "b: 'Args:' does not name ['x']" in lines
    assert "b: 'Args:' names ['y'], which are not parameters" in lines
    assert "b: raises but has no 'Raises:' section" in lines
    assert any(line.startswith("c: NumPy-style") for line in lines)
    assert "c: no 'Args:' section for ['x']" in lines
    assert "d: a generator without a 'Yields:' section" in lines
    assert not [line for line in lines if line.startswith(("e:", "_private"))]


def audit_text(path: Path) -> list[str]:
    """Like :func:`audit` for a file outside the package: the problem lines without their location."""
    tree = ast.parse(path.read_text())
    return [line for name, node in _public_functions(tree) for line in _problems(node, name)]
