"""The chaos suite's pytest hooks: the summary table of this session's trials at the end of the run.

The ``lab`` fixture comes from tests/conftest.py (a conftest applies to every directory below its own)."""

from __future__ import annotations

import pytest

from tests.chaos.trials import SESSION_ROWS, results_file, summary_table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SESSION_ROWS:
        return
    terminalreporter.section("chaos summary")
    for line in summary_table(SESSION_ROWS):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(one row per trial in {results_file()})")
