"""The code's shape, held: no module of the harness or the methods over 400 lines, no function
over 80 (design.md: functions that read top to bottom in one screen)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "methods")
MODULE_LINES, FUNCTION_LINES = 400, 80
EXEMPT_FUNCTIONS: set[str] = set()  # "path:function" of a declarative table, should one ever need it


def _modules():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules() if (n := p.read_text().count("\n")) > MODULE_LINES}
    assert long == {}, f"modules over {MODULE_LINES} lines: {long}"


def test_no_function_is_over_80_lines():
    long = {}
    for path in _modules():
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and f"{where}:{node.name}" not in EXEMPT_FUNCTIONS:
                if (n := node.end_lineno - node.lineno + 1) > FUNCTION_LINES:
                    long[f"{where}:{node.name}"] = n
    assert long == {}, f"functions over {FUNCTION_LINES} lines: {long}"
