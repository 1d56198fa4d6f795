# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter fleet.rollout.rollout_outcome: how a rollout ended, decided by _outcome.decide (the one place
the rolling strategy's report and the rollout journal decide it too)."""

from __future__ import annotations

import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.fleet.rollout.plugins.plugin_utils._outcome import decide

_HOST_LISTS = ("failed", "unreachable", "started", "untouched", "reverted", "worse")


def _names(option: str, value: t.Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise AnsibleFilterError(f"rollout_outcome: {option} must be a list, got {value!r}")
    return [str(item) for item in value]


def _budget(value: t.Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        budget = int(value)
    except (TypeError, ValueError) as error:
        raise AnsibleFilterError(
            f"rollout_outcome: max_failures must be a number of hosts, got {value!r}"
        ) from error
    if budget < 0:
        raise AnsibleFilterError(f"rollout_outcome: max_failures must not be negative, got {value!r}")
    return budget


def _flag(value: t.Any) -> bool:
    try:
        return bool(boolean(value, strict=True))
    except TypeError as error:
        raise AnsibleFilterError(
            f"rollout_outcome: analysis_halted must be a boolean, got {value!r}"
        ) from error


def rollout_outcome(
    targets: t.Any,
    *,
    failed: t.Any = None,
    unreachable: t.Any = None,
    started: t.Any = None,
    untouched: t.Any = None,
    reverted: t.Any = None,
    worse: t.Any = None,
    max_failures: t.Any = None,
    analysis_halted: t.Any = False,
) -> dict[str, t.Any]:
    """How the rollout of ``targets`` ended: each host's outcome, the status, its text, the journal result."""
    hosts = _names("targets", targets) or []
    lists = (failed, unreachable, started, untouched, reverted, worse)
    given = {option: _names(option, value) for option, value in zip(_HOST_LISTS, lists, strict=True)}
    if given["started"] is None and given["untouched"] is None:
        raise AnsibleFilterError("rollout_outcome: give the hosts that started, or those left untouched")
    outcome = decide(
        hosts,
        failed=given["failed"] or (),
        unreachable=given["unreachable"] or (),
        started=given["started"],
        untouched=given["untouched"],
        reverted=given["reverted"] or (),
        worse=given["worse"] or (),
        max_failures=_budget(max_failures),
        analysis_halted=_flag(analysis_halted),
    )
    return outcome.to_dict()


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"rollout_outcome": rollout_outcome}
