"""The code-health limits the collection keeps (issue 13): small plugin files, short functions, and every
use of ansible-core's private attributes in one fenced file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 49
# ansible-core's private attributes that a strategy can only reach by name (see _core_access.py).
CORE_PRIVATE = re.compile(r"\._tqm\b|_blocked_hosts|_pending_results|_workers\b")
FENCE = PLUGINS / "plugin_utils" / "_core_access.py"


def _plugin_sources() -> list[Path]:
    return sorted(p for p in PLUGINS.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_plugin_file_is_over_the_limit() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in _plugin_sources()}
    long = {name: lines for name, lines in sizes.items() if lines > MAX_FILE_LINES}
    assert long == {}


def test_no_plugin_function_is_over_the_limit() -> None:
    long = {}
    for path in _plugin_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert long == {}


def test_ansible_core_internals_are_reached_from_one_file() -> None:
    users = sorted(str(p.relative_to(ROOT)) for p in _plugin_sources() if CORE_PRIVATE.search(p.read_text()))
    assert users == [str(FENCE.relative_to(ROOT))]
