# Private to this collection: not a public API, may change without notice.
"""The verdicts of both release analyses (release_analysis, prometheus_analysis), and what an
inconclusive one does, which each task's ``inconclusive`` option chooses."""

from __future__ import annotations

import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._errors import ReleaseWorseError

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
WARN = "warn"  # an inconclusive verdict ends the task with a warning

INCONCLUSIVE_OPTION: dict[str, t.Any] = {"type": "str", "choices": [PASS, WARN, FAIL], "default": WARN}


def act_on_inconclusive(
    result: dict[str, t.Any], reason: str, *, choice: str, bake: float, analysis: str
) -> None:
    """Fail the task with ``result`` when ``choice`` (the option) is fail, warn with ``reason`` when it is
    warn; pass leaves the result as it is. ``analysis`` names the analysis in the warning."""
    if choice == FAIL:
        raise ReleaseWorseError(f"no verdict within the bake of {bake:g}s: {reason}", **result)
    if choice == WARN:
        result["warnings"] = [f"{analysis} inconclusive: {reason}"]
