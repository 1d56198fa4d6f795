# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to this collection: not a public API, may change without notice.
"""How a rollout ended: the one decision the rolling strategy's report, the rollout journal and the deploy
playbook's report play read (the last one through the filter fleet.rollout.rollout_outcome).

Pure Python with no Ansible imports. The vocabulary (documented in docs/outcomes.md, the filter's and the
callback's docs):

- a host's outcome: ``ok`` (rolled, on the new release), ``reverted`` (rolled, then taken back),
  ``failed``, ``unreachable``, ``untouched`` (its cycle never started);
- the run's status: ``complete``, ``complete_with_failures`` (failures within rollout_max_failures),
  ``halted``, ``halted_reverted``, ``worse`` (the release analysis found the release worse), each with the
  report's text, and the journal's ``result`` (``succeeded``, ``failed``, ``halted``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

OK, REVERTED, FAILED, UNREACHABLE, UNTOUCHED = "ok", "reverted", "failed", "unreachable", "untouched"
HOST_OUTCOMES = (OK, REVERTED, FAILED, UNREACHABLE, UNTOUCHED)

COMPLETE = "complete"
COMPLETE_WITH_FAILURES = "complete_with_failures"
HALTED = "halted"
HALTED_REVERTED = "halted_reverted"
WORSE = "worse"
STATUSES = (COMPLETE, COMPLETE_WITH_FAILURES, HALTED, HALTED_REVERTED, WORSE)

# The journal's documented file format (journal_format 1) names fewer endings than the report.
JOURNAL_RESULTS = {
    COMPLETE: "succeeded",
    COMPLETE_WITH_FAILURES: "failed",
    HALTED: "halted",
    HALTED_REVERTED: "halted",
    WORSE: "halted",
}


@dataclass(frozen=True)
class RolloutOutcome:
    """Every host's outcome, the run's status, the report's text for it and the journal's result."""

    status: str
    text: str
    halted: bool
    hosts: dict[str, str]
    worse: tuple[str, ...] = ()

    @property
    def journal_result(self) -> str:
        return JOURNAL_RESULTS[self.status]

    def by_outcome(self) -> dict[str, list[str]]:
        """The hosts of each outcome, every outcome present, hosts in the order of the targets."""
        groups: dict[str, list[str]] = {outcome: [] for outcome in HOST_OUTCOMES}
        for host, outcome in self.hosts.items():
            groups[outcome].append(host)
        return groups

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "text": self.text, "halted": self.halted}
        data.update(journal_result=self.journal_result, worse=list(self.worse), hosts=dict(self.hosts))
        data.update(self.by_outcome())
        return data


def _host_outcome(host: str, failed: set[str], unreachable: set[str], reverted: set[str], began: bool) -> str:
    # the worst first: a revert that failed leaves the host failed, not reverted
    if host in unreachable:
        return UNREACHABLE
    if host in failed:
        return FAILED
    if host in reverted:
        return REVERTED
    return OK if began else UNTOUCHED


def _status(halted: bool, worse: bool, reverted: bool, failures: bool) -> str:
    if worse:
        return WORSE
    if halted:
        return HALTED_REVERTED if reverted else HALTED
    return COMPLETE_WITH_FAILURES if failures else COMPLETE


def _text(status: str, reverted: bool, worse: Sequence[str], max_failures: int | None) -> str:
    if status == WORSE:
        head = "halted and reverted" if reverted else "halted"
        return f"{head}: the release is worse" + (f" on {'; '.join(worse)}" if worse else "")
    if status == COMPLETE_WITH_FAILURES:
        budget = " within rollout_max_failures" if max_failures is not None else ""
        return f"complete with failed hosts{budget}"
    return {COMPLETE: "complete", HALTED: "halted", HALTED_REVERTED: "halted and reverted"}[status]


def decide(
    targets: Iterable[str],
    *,
    failed: Iterable[str] = (),
    unreachable: Iterable[str] = (),
    started: Iterable[str] | None = None,
    untouched: Iterable[str] | None = None,
    reverted: Iterable[str] = (),
    worse: Iterable[str] = (),
    max_failures: int | None = None,
    analysis_halted: bool = False,
) -> RolloutOutcome:
    """How the rollout of ``targets`` ended.

    Give the hosts whose cycle began (``started``) or those that never began (``untouched``); with
    ``untouched`` every other target counts as started. It halted when failures (failed and unreachable
    hosts) passed ``max_failures`` (``None``: no budget known, so none passed it), when hosts never started
    after others did (the rollout stopped early: a failure, the budget, ``meta: end_play``), or when the
    release analysis found the release worse (``worse``, its reasons, or ``analysis_halted``)."""
    names = list(dict.fromkeys(str(host) for host in targets))
    bad, gone, back = set(map(str, failed)), set(map(str, unreachable)), set(map(str, reverted))
    if untouched is not None:
        left = set(map(str, untouched)) - bad - gone
        began = {host for host in names if host not in left}
    else:
        began = set(map(str, started or ()))
    hosts = {host: _host_outcome(host, bad, gone, back, host in began) for host in names}
    failures = sum(outcome in (FAILED, UNREACHABLE) for outcome in hosts.values())
    reasons = tuple(str(reason) for reason in worse)
    is_worse = bool(reasons) or analysis_halted
    over_budget = max_failures is not None and failures > max_failures
    stopped_early = UNTOUCHED in hosts.values() and any(host in began for host in names)
    halted = over_budget or stopped_early or is_worse
    any_reverted = REVERTED in hosts.values()
    status = _status(halted, is_worse, any_reverted, failures > 0)
    return RolloutOutcome(status, _text(status, any_reverted, reasons, max_failures), halted, hosts, reasons)
