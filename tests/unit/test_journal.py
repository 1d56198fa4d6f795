"""The rollout journal's logic (phases, outcomes, the result), its atomic file and its throttled writes,
with fake tasks, clocks and timers; and a writer killed with SIGKILL at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.fleet.rollout.plugins.callback.rollout_journal import _count
from ansible_collections.fleet.rollout.plugins.plugin_utils._journal import (
    CHANGED,
    FAILED,
    IGNORED,
    OK,
    SKIPPED,
    UNREACHABLE,
    HostTotals,
    Journal,
    file_name,
    new_run_id,
    phase_of,
    plain,
    short,
    timestamp,
)
from ansible_collections.fleet.rollout.plugins.plugin_utils._journal_file import JournalFile, write_atomic

ROOT = Path(__file__).resolve().parents[2]
TASKS = "/c/ansible_collections/fleet/rollout/roles/deploy/tasks"
ROLLBACK = "/c/ansible_collections/fleet/rollout/roles/rollback/tasks"
PLAYBOOK = "/c/ansible_collections/fleet/rollout/playbooks/deploy.yml"
T0 = 1_800_000_000.0


# ---- phases from task paths -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("chain", "in_role", "phase"),
    [
        # a task of drain.yml, imported by cycle.yml, imported by main.yml
        (
            [
                f"{TASKS}/drain.yml:6",
                "",
                f"{TASKS}/cycle.yml:6",
                f"{TASKS}/cycle.yml:4",
                f"{TASKS}/main.yml:23",
            ],
            True,
            "drain",
        ),
        # restart.yml imported from switch.yml is a step of its own
        ([f"{TASKS}/restart.yml:8", f"{TASKS}/switch.yml:34", f"{TASKS}/main.yml:23"], True, "restart"),
        # a hook's task (the user's file) belongs to the step that included it
        (["/srv/hooks/before_drain.yml:1", f"{TASKS}/drain.yml:2", f"{TASKS}/cycle.yml:6"], True, "drain"),
        # everything under recover.yml is recover, even the verify and enable it runs again
        ([f"{TASKS}/verify.yml:2", f"{TASKS}/recover.yml:40", f"{TASKS}/cycle.yml:21"], True, "recover"),
        ([f"{TASKS}/recover.yml:3", f"{TASKS}/cycle.yml:21"], True, "recover"),
        # main.yml and the role's argument validation (a role task at the play's roles: line) check input
        ([f"{TASKS}/main.yml:4"], True, "check"),
        ([f"{TASKS}/rules.yml:4", f"{TASKS}/main.yml:20"], True, "check"),
        ([f"{PLAYBOOK}:37"], True, "check"),
        # the entry point that only checks the settings, before any host is touched: no phase
        ([f"{TASKS}/rules.yml:4", f"{TASKS}/settings.yml:4"], True, None),
        # the deploy cycle run by the rollback role keeps its steps; the rollback role's own tasks
        ([f"{TASKS}/switch.yml:6", f"{TASKS}/cycle.yml:10", f"{ROLLBACK}/main.yml:11"], True, "switch"),
        ([f"{ROLLBACK}/main.yml:3"], True, "rollback"),
        # a checkout's own path (no ansible_collections) and .yaml files
        (["roles/deploy/tasks/stage.yaml:2"], True, "stage"),
        # outside the roles
        ([f"{PLAYBOOK}:8"], False, None),
        (["/srv/other/roles/deployer/tasks/drain.yml:1"], False, None),
        ([], False, None),
    ],
)
def test_the_phase_is_the_role_task_file_the_task_comes_from(
    chain: list[str], in_role: bool, phase: str | None
) -> None:
    assert phase_of(chain, in_role=in_role) == phase


# ---- the journal --------------------------------------------------------------------------------------
class Clock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> float:
        self.now += seconds
        return self.now


def run_task(
    journal: Journal,
    clock: Clock,
    host: str,
    task: str,
    phase: str | None,
    *,
    status: str = OK,
    msg: str = "",
) -> None:
    journal.task_started(host, task, phase, at=clock.tick(), key=f"{host}/{task}")
    journal.task_finished(host, task, phase, status, at=clock.tick(), msg=msg or None, key=f"{host}/{task}")


def phases(journal: Journal, host: str) -> list[tuple[str, str, int]]:
    return [(p["phase"], p["outcome"], p["tasks"]) for p in journal.to_dict(T0)["hosts"][host]["phases"]]


def new_journal(*hosts: str) -> tuple[Journal, Clock]:
    clock = Clock()
    journal = Journal("20270115T080000Z-42", clock())
    journal.play_started("Preflight", "linear", hosts, at=clock())
    return journal, clock


def test_consecutive_tasks_of_a_step_make_one_phase_and_skipped_tasks_make_none() -> None:
    journal, clock = new_journal("app01")
    run_task(journal, clock, "app01", "read balancers", None)
    run_task(journal, clock, "app01", "assert member", None)
    run_task(journal, clock, "app01", "validate arguments", "check")
    run_task(journal, clock, "app01", "check rules", "check")
    run_task(journal, clock, "app01", "copy artifact", "stage", status=CHANGED)
    run_task(journal, clock, "app01", "install release", "stage", status=OK)
    run_task(journal, clock, "app01", "before_drain hook", "drain", status=SKIPPED)
    run_task(journal, clock, "app01", "drain", "drain", status=CHANGED)
    run_task(journal, clock, "app01", "after_drain hook", "drain", status=SKIPPED)
    run_task(
        journal, clock, "app01", "before_switch hook", "switch", status=SKIPPED
    )  # only skipped: no phase
    run_task(journal, clock, "app01", "restart", "restart", status=CHANGED)
    run_task(journal, clock, "app01", "health check", "verify")
    run_task(journal, clock, "app01", "tolerated failure", "verify", status=IGNORED)
    run_task(journal, clock, "app01", "enable", "enable", status=CHANGED)
    run_task(journal, clock, "app01", "give the lease back", "lease")  # bookkeeping: no phase
    run_task(journal, clock, "app01", "a later play's task", None)
    run_task(journal, clock, "app01", "take a lease held by another run", "lease", status=FAILED)
    assert phases(journal, "app01") == [
        ("preflight", OK, 2),
        ("check", OK, 2),
        ("stage", CHANGED, 2),
        ("drain", CHANGED, 1),
        ("restart", CHANGED, 1),
        ("verify", OK, 2),
        ("enable", CHANGED, 1),
        ("after", OK, 1),
        ("lease", FAILED, 1),
    ]


def test_a_phase_runs_from_its_first_task_start_to_its_last_result() -> None:
    journal, _clock = new_journal("app01")
    journal.task_started("app01", "copy", "stage", at=T0 + 1, key="k1")
    journal.task_finished("app01", "copy", "stage", CHANGED, at=T0 + 3, key="k1")
    journal.task_started("app01", "install", "stage", at=T0 + 4, key="k2")
    journal.task_finished("app01", "install {{ v }} as v2", "stage", OK, at=T0 + 6.5, key="k2")
    # the skipped task at the end (its own start) changes nothing
    journal.task_started("app01", "hook", "stage", at=T0 + 7, key="k3")
    journal.task_finished("app01", "hook", "stage", SKIPPED, at=T0 + 7.1, key="k3")
    (stage,) = journal.to_dict(T0)["hosts"]["app01"]["phases"]
    assert stage == {
        "phase": "stage",
        "started_at": timestamp(T0 + 1),
        "ended_at": timestamp(T0 + 6.5),
        "seconds": 5.5,
        "outcome": CHANGED,
        "tasks": 2,
    }


def test_a_task_in_flight_is_shown_until_its_result() -> None:
    journal, _clock = new_journal("app01", "app02")
    journal.task_started("app01", "drain", "drain", at=T0 + 2, key="d")
    hosts = journal.to_dict(T0 + 3)["hosts"]
    assert hosts["app01"]["running"] == {"phase": "drain", "task": "drain", "since": timestamp(T0 + 2)}
    assert hosts["app01"]["outcome"] == "running"
    assert hosts["app02"] == {"outcome": "waiting", "phases": []}
    journal.task_finished("app01", "drain", "drain", CHANGED, at=T0 + 4, key="d")
    assert "running" not in journal.to_dict(T0 + 5)["hosts"]["app01"]


def test_a_host_drained_again_says_where_and_how_and_a_host_that_was_not_says_nothing() -> None:
    journal, _clock = new_journal("app01", "app02")
    journal.redrained("app01", [{"during": "hold", "balancer": "/run/lb1.sock", "backend": "app", "at": "t"}])
    journal.redrained("localhost", [{"during": "drain"}])  # no target host: not journaled
    hosts = journal.to_dict(T0 + 1)["hosts"]
    assert hosts["app01"]["redrains"] == [
        {"during": "hold", "balancer": "/run/lb1.sock", "backend": "app", "at": "t"}
    ]
    assert "redrains" not in hosts["app02"] and "localhost" not in hosts


def test_interleaved_results_of_several_hosts_stay_with_their_host() -> None:
    """The rolling strategy (free) runs several hosts at once: starts and results come in any order."""
    journal, clock = new_journal("app01", "app02", "app03")
    steps = ["stage", "drain", "switch", "verify", "enable"]
    shuffle = random.Random(7)
    for step in steps:
        hosts = ["app01", "app02", "app03"]
        for host in shuffle.sample(hosts, 3):
            journal.task_started(host, step, step, at=clock.tick(), key=f"{host}{step}")
        for host in shuffle.sample(hosts, 3):
            journal.task_finished(host, step, step, CHANGED, at=clock.tick(), key=f"{host}{step}")
    for host in ("app01", "app02", "app03"):
        assert phases(journal, host) == [(step, CHANGED, 1) for step in steps]


def test_a_failed_step_keeps_the_task_and_message_and_the_host_is_failed() -> None:
    journal, clock = new_journal("app01")
    run_task(
        journal,
        clock,
        "app01",
        "deploy : Health-check the release",
        "verify",
        status=FAILED,
        msg="status 500",
    )
    assert journal.to_dict(T0)["hosts"]["app01"]["outcome"] == FAILED
    run_task(journal, clock, "app01", "switch back", "recover", status=CHANGED)
    assert journal.to_dict(T0)["hosts"]["app01"]["outcome"] == "running"  # the rescue took over
    run_task(
        journal, clock, "app01", "fail with evidence", "recover", status=FAILED, msg="deploying v3 failed"
    )
    verify, recover = journal.to_dict(T0)["hosts"]["app01"]["phases"]
    assert (verify["outcome"], verify["failed_task"], verify["msg"]) == (
        FAILED,
        "deploy : Health-check the release",
        "status 500",
    )
    assert (recover["outcome"], recover["tasks"], recover["msg"]) == (FAILED, 2, "deploying v3 failed")
    assert journal.to_dict(T0)["hosts"]["app01"]["msg"] == "deploying v3 failed"


def test_messages_are_text_and_bounded() -> None:
    assert short("x" * 5000) == "x" * 1997 + "..."
    assert short({"a": 1}) == '{"a": 1}'
    assert short("") is None


def test_only_target_hosts_get_tasks_outside_the_roles() -> None:
    """A report play on localhost adds nothing; a role task on a host not targeted still counts."""
    journal, clock = new_journal("app01")
    journal.play_started("Report", "linear", [], at=clock())
    run_task(journal, clock, "localhost", "debug", None)
    run_task(journal, clock, "web09", "drain", "drain", status=CHANGED)
    assert sorted(journal.to_dict(T0)["hosts"]) == ["app01", "web09"]


def test_the_run_succeeds_when_every_host_went_through() -> None:
    journal, clock = new_journal("app01", "app02")
    for host in ("app01", "app02"):
        run_task(journal, clock, host, "preflight", None)
        run_task(journal, clock, host, "enable", "enable", status=CHANGED)
    journal.finish({"app01": HostTotals(), "app02": HostTotals()}, at=clock.tick())
    data = journal.to_dict(clock())
    assert (data["result"], data["finished_at"]) == ("succeeded", timestamp(clock()))
    summary = {OK: ["app01", "app02"], "reverted": [], FAILED: [], UNREACHABLE: [], "untouched": []}
    assert data["summary"] == summary
    assert {h["outcome"] for h in data["hosts"].values()} == {OK}


def test_a_failed_canary_halts_the_rollout_and_leaves_the_others_untouched() -> None:
    journal, clock = new_journal("app01", "app02", "app03")
    for host in ("app01", "app02", "app03"):
        run_task(journal, clock, host, "preflight", None)
    run_task(journal, clock, "app01", "verify", "verify", status=FAILED, msg="status 500")
    run_task(journal, clock, "app01", "switch back", "recover", status=CHANGED)
    run_task(journal, clock, "app01", "fail", "recover", status=FAILED, msg="deploying v3 failed")
    journal.finish({"app01": HostTotals(failures=1)}, at=clock.tick())
    data = journal.to_dict(clock())
    assert data["result"] == "halted"
    summary = {OK: [], "reverted": [], FAILED: ["app01"], UNREACHABLE: [], "untouched": ["app02", "app03"]}
    assert data["summary"] == summary
    assert data["hosts"]["app02"]["outcome"] == "untouched"
    assert [p["phase"] for p in data["hosts"]["app02"]["phases"]] == ["preflight"]


def test_a_failed_preflight_fails_the_run_with_every_host_untouched() -> None:
    journal, clock = new_journal("app01", "app02")
    run_task(journal, clock, "app01", "assert", None, status=FAILED, msg="not a server of the balancer")
    run_task(journal, clock, "app02", "assert", None)
    journal.finish({"app01": HostTotals(failures=1)}, at=clock.tick())
    data = journal.to_dict(clock())
    assert data["result"] == FAILED
    summary = {OK: [], "reverted": [], FAILED: ["app01"], UNREACHABLE: [], "untouched": ["app02"]}
    assert data["summary"] == summary


def test_failures_within_the_budget_fail_the_run_and_unreachable_hosts_are_named() -> None:
    journal, clock = new_journal("app01", "app02", "app03")
    run_task(journal, clock, "app01", "enable", "enable", status=CHANGED)
    run_task(journal, clock, "app02", "drain", "drain", status=FAILED, msg="capacity")
    run_task(journal, clock, "app03", "stage", "stage", status=UNREACHABLE, msg="ssh: connection refused")
    journal.finish({"app02": HostTotals(failures=1), "app03": HostTotals(unreachable=1)}, at=clock.tick())
    data = journal.to_dict(clock())
    assert data["result"] == FAILED
    summary = {OK: ["app01"], "reverted": [], FAILED: ["app02"], UNREACHABLE: ["app03"], "untouched": []}
    assert data["summary"] == summary
    assert data["hosts"]["app03"]["phases"][0]["outcome"] == UNREACHABLE


def test_hosts_the_rollback_role_took_back_are_reverted() -> None:
    journal, clock = new_journal("app01", "app02", "app03")
    run_task(journal, clock, "app01", "enable", "enable", status=CHANGED)
    run_task(journal, clock, "app02", "verify", "verify", status=FAILED, msg="status 500")
    run_task(journal, clock, "app01", "include the rollback role", None)  # the revert play
    run_task(journal, clock, "app01", "read where the host is", "rollback")
    run_task(journal, clock, "app01", "drain", "drain", status=CHANGED)
    run_task(journal, clock, "app01", "switch back", "switch", status=CHANGED)
    journal.finish({"app02": HostTotals(failures=1)}, at=clock.tick())
    data = journal.to_dict(clock())
    assert data["result"] == "halted"
    summary = {OK: [], "reverted": ["app01"], FAILED: ["app02"], UNREACHABLE: [], "untouched": ["app03"]}
    assert data["summary"] == summary
    assert [p[0] for p in phases(journal, "app01")] == ["enable", "after", "rollback", "drain", "switch"]


def test_a_rescued_failure_leaves_the_host_ok() -> None:
    journal, clock = new_journal("app01")
    run_task(journal, clock, "app01", "verify", "verify", status=FAILED, msg="status 500")
    run_task(journal, clock, "app01", "switch back", "recover", status=CHANGED)
    journal.finish({"app01": HostTotals()}, at=clock.tick())
    data = journal.to_dict(clock())
    assert (data["result"], data["hosts"]["app01"]["outcome"]) == ("succeeded", OK)
    assert "msg" not in data["hosts"]["app01"]


def test_a_run_that_ends_without_its_recap_is_interrupted() -> None:
    journal, clock = new_journal("app01")
    journal.task_started("app01", "drain", "drain", at=clock.tick())
    journal.interrupt(clock.tick(), "stopped")
    data = journal.to_dict(clock())
    assert (data["result"], data["msg"], data["finished_at"]) == (
        "interrupted",
        "stopped",
        timestamp(clock()),
    )
    assert data["hosts"]["app01"]["running"]["task"] == "drain"  # where it was when it stopped


def test_the_journal_says_what_was_rolled() -> None:
    journal, _clock = new_journal("app01")
    journal.set(target="app", version="v2", window=3, canary=1, strategy="fleet.rollout.rolling")
    journal.set(version=None)  # unknown in a later play: kept
    data = journal.to_dict(T0 + 1.5)
    assert {k: data[k] for k in ("run_id", "target", "version", "window", "canary", "strategy")} == {
        "run_id": "20270115T080000Z-42",
        "target": "app",
        "version": "v2",
        "window": 3,
        "canary": 1,
        "strategy": "fleet.rollout.rolling",
    }
    assert (data["result"], data["started_at"], data["updated_at"]) == (
        "running",
        timestamp(T0),
        timestamp(T0 + 1.5),
    )
    assert data["finished_at"] is None
    assert data["plays"] == [{"name": "Preflight", "strategy": "linear", "started_at": timestamp(T0)}]
    with pytest.raises(KeyError):
        journal.set(colour="blue")


class TaggedStr(str):
    """Like ansible-core 2.19's tagged strings: a str subclass."""


def test_values_become_plain_json() -> None:
    value = {"a": TaggedStr("x"), 1: (True, 2, 2.5, float("nan")), "b": None, "c": object}
    assert plain(value) == {"a": "x", "1": [True, 2, 2.5, "nan"], "b": None, "c": str(object)}
    assert type(plain(value)["a"]) is str


def test_file_names_sort_by_time_and_name_the_target() -> None:
    assert new_run_id(T0, 4242) == "20270115T080000Z-4242"
    assert file_name("20270115T080000Z-4242", "app") == "20270115T080000Z-4242-app.json"
    assert file_name("r", "web:&db/../x") == "r-web_db_.._x.json"
    assert file_name("r", "") == "r-all.json"
    assert timestamp(T0 + 0.25) == "2027-01-15T08:00:00.250Z"


# ---- the file -----------------------------------------------------------------------------------------
def test_an_atomic_write_replaces_the_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    path.write_text("old")
    write_atomic(path, {"result": "running", "hosts": {"app01": {}}})
    assert json.loads(path.read_text()) == {"result": "running", "hosts": {"app01": {}}}
    write_atomic(path, {"result": "succeeded"}, durable=True)
    assert json.loads(path.read_text()) == {"result": "succeeded"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.json"]


def test_a_failed_write_keeps_the_previous_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.json"
    write_atomic(path, {"n": 1})

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, {"n": 2})
    assert json.loads(path.read_text()) == {"n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.json"]


class FakeTimer:
    def __init__(self, delay: float, action: Callable[[], None]) -> None:
        self.delay, self.action, self.cancelled = delay, action, False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        assert not self.cancelled
        self.action()


class Rig:
    """A JournalFile on a fake clock and fake timers, rendering a counter."""

    def __init__(self, path: Path, interval: float = 0.2) -> None:
        self.clock = Clock(100.0)
        self.timers: list[FakeTimer] = []
        self.state = 0
        self.errors: list[OSError] = []
        self.file = JournalFile(
            path,
            lambda now: {"state": self.state, "now": now},
            interval=interval,
            clock=self.clock,
            wall_clock=self.clock,
            timer=self.timer,
            on_error=self.errors.append,
        )

    def timer(self, delay: float, action: Callable[[], None]) -> FakeTimer:
        self.timers.append(FakeTimer(delay, action))
        return self.timers[-1]

    def change(self, state: int) -> None:
        self.state = state
        self.file.changed()

    def on_disk(self) -> Any:
        return json.loads(self.file.path.read_text())["state"]


def test_writes_are_throttled_and_the_last_change_follows_on_a_timer(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "j.json")
    rig.change(1)  # the first change is written at once
    assert (rig.on_disk(), rig.file.writes, rig.timers) == (1, 1, [])
    rig.clock.tick(0.05)
    rig.change(2)  # too soon: a timer for the rest of the interval
    rig.clock.tick(0.05)
    rig.change(3)  # still too soon: the same timer will write it
    assert (rig.on_disk(), rig.file.writes, len(rig.timers)) == (1, 1, 1)
    assert rig.timers[0].delay == pytest.approx(0.15)
    assert rig.file.pending
    rig.clock.tick(0.1)
    rig.timers[0].fire()
    assert (rig.on_disk(), rig.file.writes, rig.file.pending) == (3, 2, False)
    rig.clock.tick(0.5)
    rig.change(4)  # the last write is old: at once, no timer
    assert (rig.on_disk(), rig.file.writes, len(rig.timers)) == (4, 3, 1)


def test_a_write_due_before_the_timer_cancels_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "j.json")
    rig.change(1)
    rig.clock.tick(0.1)
    rig.change(2)
    rig.clock.tick(0.2)
    rig.change(3)  # due: written now, and the pending timer is not needed any more
    assert (rig.on_disk(), rig.file.writes, rig.timers[0].cancelled) == (3, 2, True)


def test_close_writes_the_final_state_at_once_and_nothing_after(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "j.json", interval=60)
    rig.change(1)
    rig.change(2)  # waits for its timer
    rig.state = 3
    rig.file.close()
    assert (rig.on_disk(), rig.timers[0].cancelled) == (3, True)
    rig.change(4)
    rig.file.flush()
    rig.file.close()
    assert (rig.on_disk(), rig.file.writes) == (3, 2)


def test_interval_zero_writes_every_change(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "j.json", interval=0)
    for state in range(5):
        rig.change(state)
    assert (rig.on_disk(), rig.file.writes, rig.timers) == (4, 5, [])


def test_a_failing_write_is_reported_and_retried(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    rig = Rig(blocker / "j.json", interval=0)
    rig.change(1)
    assert (rig.file.writes, rig.file.pending, len(rig.errors)) == (0, True, 1)
    blocker.unlink()
    rig.change(2)  # the directory is made on the next write
    assert (rig.on_disk(), rig.file.writes, rig.file.pending) == (2, 1, False)


def test_the_real_timer_writes_the_last_change_without_another_event(tmp_path: Path) -> None:
    state = {"n": 0}
    # an interval the five changes below never span, even on a loaded machine: they coalesce into one write
    journal_file = JournalFile(tmp_path / "j.json", lambda now: dict(state), interval=1.0)
    for n in range(1, 6):
        state["n"] = n
        with journal_file.lock:
            journal_file.changed()
    deadline = time.monotonic() + 5
    while json.loads((tmp_path / "j.json").read_text())["n"] != 5:
        assert time.monotonic() < deadline, "the trailing write never came"
        time.sleep(0.02)
    assert journal_file.writes == 2
    journal_file.close()


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ansible_collections.fleet.rollout.plugins.plugin_utils._journal import Journal
    from ansible_collections.fleet.rollout.plugins.plugin_utils._journal_file import JournalFile
    journal = Journal("run", time.time())
    hosts = [f"app{i:03d}" for i in range(100)]
    journal.play_started("Roll", "fleet.rollout.rolling", hosts, at=time.time())
    journal_file = JournalFile(Path(sys.argv[1]), journal.to_dict, interval=0)
    journal_file.changed()
    print("written", flush=True)
    steps = ["stage", "drain", "switch", "restart", "verify", "enable"]
    n = 0
    while True:
        for host in hosts:
            journal.task_started(host, "t", steps[n % 6], at=time.time())
            journal.task_finished(host, "t", steps[n % 6], "changed", at=time.time(), msg="x" * 300)
            journal_file.changed()
        n += 1
    """
)


def test_a_writer_killed_at_random_moments_leaves_a_whole_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / ".tmp" / "collections")}
    sizes = set()
    for trial in range(8):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
        )
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline() == "written\n"
            time.sleep(random.uniform(0.01, 0.3))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        data = json.loads(path.read_text())  # never a partial file
        assert data["result"] == "running", trial
        assert len(data["hosts"]) == 100
        sizes.add(path.stat().st_size)
    assert len(sizes) > 1  # the kills did land at different points of the run


@pytest.mark.parametrize(
    ("raw", "recorded"),
    [(None, 1), ("3", 3), (3, 3), ("25%", "25%"), ([1, "3", "25%"], [1, 3, "25%"]),
     ("[1,3,25%]", [1, 3, "25%"]), ("[1,", "[1,")],
)  # fmt: skip
def test_the_journal_has_the_window_with_counts_as_numbers(raw: object, recorded: object) -> None:
    """``-e rollout_window=3`` and ``-e rollout_window=[1,3]`` arrive as text: the journal has 3, [1, 3]."""
    assert _count(raw, 1) == recorded


def test_a_lock_taken_from_another_run_is_audited_with_its_holder() -> None:
    journal = Journal("run", 0.0)
    assert "lock_takeovers" not in journal.to_dict(1.0)  # only a run that took a lock over has the key
    holder = {"name": "app", "run_id": "other-run", "host": "ctl01", "holder_pid": 977}
    journal.lock_taken("forced", holder, "broke rollout lock 'app' held by run other-run", 1.5)
    [entry] = journal.to_dict(2.0)["lock_takeovers"]
    assert entry == {
        "takeover": "forced",
        "previous_holder": holder,
        "msg": "broke rollout lock 'app' held by run other-run",
        "at": timestamp(1.5),
    }
    json.dumps(journal.to_dict(2.0))  # stays plain JSON
