"""How a rollout ended (plugins/plugin_utils/_outcome.py) and its filter, fleet.rollout.rollout_outcome: every
ending, each host's outcome, the report's text and the journal's result."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.fleet.rollout.plugins.filter.rollout_outcome import rollout_outcome
from ansible_collections.fleet.rollout.plugins.plugin_utils._journal import CHANGED, HostTotals, Journal
from ansible_collections.fleet.rollout.plugins.plugin_utils._outcome import (
    COMPLETE,
    COMPLETE_WITH_FAILURES,
    HALTED,
    HALTED_REVERTED,
    HOST_OUTCOMES,
    STATUSES,
    WORSE,
    decide,
)

HOSTS = ["app01", "app02", "app03", "app04"]


def test_every_host_rolled_is_complete() -> None:
    outcome = decide(HOSTS, started=HOSTS, max_failures=0)
    assert (outcome.status, outcome.text, outcome.halted, outcome.journal_result) == (
        COMPLETE,
        "complete",
        False,
        "succeeded",
    )
    assert outcome.by_outcome() == {
        "ok": HOSTS,
        "reverted": [],
        "failed": [],
        "unreachable": [],
        "untouched": [],
    }


def test_failures_within_the_budget_complete_with_failures() -> None:
    outcome = decide(HOSTS, failed=["app03"], untouched=[], max_failures=2)
    assert (outcome.status, outcome.text, outcome.halted, outcome.journal_result) == (
        COMPLETE_WITH_FAILURES,
        "complete with failed hosts within rollout_max_failures",
        False,
        "failed",
    )
    assert outcome.hosts == {"app01": "ok", "app02": "ok", "app03": "failed", "app04": "ok"}


def test_failures_with_no_budget_known_do_not_halt() -> None:
    """The journal knows no budget unless the playbook says it: the roll ran to its end, with failures."""
    outcome = decide(HOSTS, failed=["app02"], unreachable=["app03"], started=HOSTS)
    assert (outcome.status, outcome.text, outcome.journal_result) == (
        COMPLETE_WITH_FAILURES,
        "complete with failed hosts",
        "failed",
    )
    assert outcome.by_outcome()["unreachable"] == ["app03"]


def test_failures_beyond_the_budget_halt_even_with_no_host_left() -> None:
    outcome = decide(HOSTS, failed=["app01", "app02"], untouched=[], max_failures=1)
    assert (outcome.status, outcome.text, outcome.halted, outcome.journal_result) == (
        HALTED,
        "halted",
        True,
        "halted",
    )


def test_an_unreachable_host_counts_against_the_budget() -> None:
    outcome = decide(HOSTS, failed=["app01"], unreachable=["app02"], untouched=[], max_failures=1)
    assert outcome.status == HALTED


def test_a_failure_that_left_hosts_unstarted_halts() -> None:
    outcome = decide(HOSTS, failed=["app01"], untouched=["app02", "app03", "app04"], max_failures=5)
    assert (outcome.status, outcome.halted) == (HALTED, True)
    assert outcome.by_outcome()["untouched"] == ["app02", "app03", "app04"]


def test_hosts_left_unstarted_halt_without_a_failure() -> None:
    """meta: end_play, say: the rollout stopped early, the fleet is not on the release."""
    outcome = decide(HOSTS, started=["app01", "app02"])
    assert (outcome.status, outcome.journal_result) == (HALTED, "halted")


def test_a_halt_with_reverted_hosts_is_halted_and_reverted() -> None:
    outcome = decide(
        HOSTS, failed=["app02"], untouched=["app03", "app04"], reverted=["app01"], max_failures=0
    )
    assert (outcome.status, outcome.text, outcome.journal_result) == (
        HALTED_REVERTED,
        "halted and reverted",
        "halted",
    )
    assert outcome.hosts == {
        "app01": "reverted",
        "app02": "failed",
        "app03": "untouched",
        "app04": "untouched",
    }


def test_reverted_hosts_after_a_complete_roll_are_complete() -> None:
    """The rollback playbook journaled: every host taken back, none halted."""
    outcome = decide(HOSTS, started=HOSTS, reverted=HOSTS)
    assert (outcome.status, outcome.journal_result) == (COMPLETE, "succeeded")
    assert set(outcome.hosts.values()) == {"reverted"}


def test_a_release_worse_by_the_analysis_halts_with_its_reasons() -> None:
    reasons = ["app03: 8% errors", "app04: 200 ms slower"]
    outcome = decide(HOSTS, untouched=[], worse=reasons, max_failures=0)
    assert (outcome.status, outcome.halted, outcome.worse) == (WORSE, True, tuple(reasons))
    assert outcome.text == "halted: the release is worse on app03: 8% errors; app04: 200 ms slower"
    reverted = decide(HOSTS, untouched=[], reverted=HOSTS, worse=reasons[:1], max_failures=0)
    assert (reverted.status, reverted.journal_result) == (WORSE, "halted")
    assert reverted.text == "halted and reverted: the release is worse on app03: 8% errors"


def test_the_analysis_can_halt_without_a_reason() -> None:
    outcome = decide(HOSTS, started=HOSTS, analysis_halted=True)
    assert (outcome.status, outcome.text) == (WORSE, "halted: the release is worse")


def test_a_failed_preflight_with_no_cycle_started_is_no_halt() -> None:
    """A host that failed before any cycle began, the others untouched: nothing was rolled."""
    outcome = decide(["app01", "app02"], failed=["app01"], started=[])
    assert (outcome.status, outcome.journal_result) == (COMPLETE_WITH_FAILURES, "failed")
    assert outcome.hosts == {"app01": "failed", "app02": "untouched"}


def test_the_worst_outcome_of_a_host_wins() -> None:
    outcome = decide(
        ["a", "b", "c"], failed=["a", "b"], unreachable=["a"], reverted=["b", "c"], started=["c"]
    )
    assert outcome.hosts == {"a": "unreachable", "b": "failed", "c": "reverted"}


def test_a_failed_host_is_never_untouched() -> None:
    outcome = decide(["a", "b"], failed=["a"], untouched=["a", "b"])
    assert outcome.hosts == {"a": "failed", "b": "untouched"}
    assert outcome.status == HALTED  # a failed, so it started, and b never did


def test_every_status_has_a_text_and_a_journal_result() -> None:
    endings = {
        COMPLETE: decide(HOSTS, started=HOSTS),
        COMPLETE_WITH_FAILURES: decide(HOSTS, failed=["app01"], started=HOSTS),
        HALTED: decide(HOSTS, started=HOSTS[:1]),
        HALTED_REVERTED: decide(HOSTS, started=HOSTS[:1], reverted=HOSTS[:1]),
        WORSE: decide(HOSTS, started=HOSTS, worse=["x"]),
    }
    assert {status: outcome.status for status, outcome in endings.items()} == {s: s for s in STATUSES}
    assert {outcome.journal_result for outcome in endings.values()} == {"succeeded", "failed", "halted"}


def test_the_filter_returns_the_outcome_as_plain_data() -> None:
    data: dict[str, Any] = rollout_outcome(
        HOSTS, failed=["app02"], untouched=["app03", "app04"], reverted=["app01"], max_failures="0"
    )
    assert {key: data[key] for key in ("status", "text", "halted", "journal_result", "worse")} == {
        "status": HALTED_REVERTED,
        "text": "halted and reverted",
        "halted": True,
        "journal_result": "halted",
        "worse": [],
    }
    assert {outcome: data[outcome] for outcome in HOST_OUTCOMES} == {
        "ok": [],
        "reverted": ["app01"],
        "failed": ["app02"],
        "unreachable": [],
        "untouched": ["app03", "app04"],
    }
    assert data["hosts"]["app02"] == "failed"


def test_the_filter_reads_analysis_halted_as_a_boolean() -> None:
    assert rollout_outcome(HOSTS, started=HOSTS, analysis_halted="yes")["status"] == WORSE
    assert rollout_outcome(HOSTS, started=HOSTS, analysis_halted="false")["status"] == COMPLETE


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "give the hosts that started, or those left untouched"),
        ({"untouched": "app01"}, "untouched must be a list"),
        ({"untouched": [], "max_failures": "many"}, "max_failures must be a number of hosts"),
        ({"untouched": [], "max_failures": -1}, "max_failures must not be negative"),
        ({"untouched": [], "analysis_halted": "maybe"}, "analysis_halted must be a boolean"),
    ],
)
def test_the_filter_refuses_bad_arguments(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        rollout_outcome(HOSTS, **arguments)


def _rolled_journal(*hosts: str) -> Journal:
    journal = Journal("20270115T080000Z-42", 1_000.0)
    journal.play_started("Roll", "fleet.rollout.rolling", hosts, at=1_000.0)
    for at, host in enumerate(hosts, 1_001):
        journal.task_finished(host, "switch", "switch", CHANGED, at=float(at))
    return journal


def test_the_journal_says_halted_for_a_release_the_analysis_found_worse() -> None:
    """The deploy playbook's decision reached the journal: the recap alone shows a good run."""
    journal = _rolled_journal("app01", "app02")
    journal.decided(worse=["app02: 8% errors"], max_failures=0)
    journal.finish({}, at=2_000.0)
    assert journal.result == "halted"
    assert journal.summary == {
        "ok": ["app01", "app02"],
        "reverted": [],
        "failed": [],
        "unreachable": [],
        "untouched": [],
    }


def test_the_journal_counts_the_budget_the_playbook_decided_with() -> None:
    within = _rolled_journal("app01", "app02", "app03")
    within.decided(max_failures=1)
    within.finish({"app02": HostTotals(failures=1)}, at=2_000.0)
    beyond = _rolled_journal("app01", "app02", "app03")
    beyond.decided(max_failures=0)
    beyond.finish({"app02": HostTotals(failures=1)}, at=2_000.0)
    assert (within.result, beyond.result) == ("failed", "halted")


def test_the_journal_and_the_filter_agree_on_every_host() -> None:
    journal = _rolled_journal("app01", "app02")
    journal.play_started("Report", "linear", ["app03"], at=1_500.0)  # a target the roll never started
    journal.finish({"app02": HostTotals(failures=1)}, at=2_000.0)
    data = rollout_outcome(["app01", "app02", "app03"], failed=["app02"], started=["app01", "app02"])
    assert journal.summary == {outcome: data[outcome] for outcome in HOST_OUTCOMES}
    assert journal.result == data["journal_result"] == "halted"
