"""LockManager on real directories in tmp_path: acquire, keep, take over, break, release; real races."""

from __future__ import annotations

import errno
import fcntl
import json
import multiprocessing
import os
import typing as t
from pathlib import Path
from unittest import mock

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils import _lock
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConflictError,
    FleetRolloutError,
    InvalidInputError,
    TimeoutExpiredError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._lock import (
    LockManager,
    validate_name,
)
from ansible_collections.fleet.rollout.plugins.module_utils._lock_record import LockRecord
from ansible_collections.fleet.rollout.plugins.module_utils._lock_task import run_lock

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00+00:00


class Clock:
    """A wall clock that only moves when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def locks(tmp_path: Path) -> Path:
    return tmp_path / "locks"


def manager(locks: Path, clock: t.Callable[[], float], check_mode: bool = False) -> LockManager:
    return LockManager(str(locks), "web", check_mode=check_mode, now=clock)


def on_disk(locks: Path, name: str = "web") -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], json.loads((locks / f"{name}.lock").read_text()))


def leftovers(locks: Path) -> list[str]:
    """Anything but locks and guards: temporary files or tombstones that should be gone."""
    return sorted(p.name for p in locks.iterdir() if not p.name.endswith((".lock", ".guard")))


# ---- validation ----


@pytest.mark.parametrize("name", ["web", "app-eu_1.prod", "A.b-C_9", "x" * 100])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("app/eu", "'/'"),
        ("../etc", "'/'"),
        ("app eu", "whitespace"),
        ("app\teu", "control characters"),
        ("app;rm", "';'"),
        ("app\x00", "control characters"),
        ("app\n", "control characters"),
        (".hidden", "a leading '.'"),
        ("..", "a leading '.'"),
        ("app:!db", "'!', ':'"),
        ("café", "'é'"),
        ("x" * 101, "more than 100 characters"),
    ],
)
def test_invalid_names_are_refused_naming_the_value(name: str, problem: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_name(name)
    assert repr(name) in caught.value.message
    assert problem in caught.value.message
    assert caught.value.details["name"] == name


@pytest.mark.parametrize("name", ["", None, 3])
def test_empty_or_non_string_names_are_refused(name: t.Any) -> None:
    with pytest.raises(InvalidInputError, match="non-empty string"):
        validate_name(name)


def test_an_invalid_name_touches_nothing(locks: Path, clock: Clock) -> None:
    with pytest.raises(InvalidInputError):
        LockManager(str(locks), "a/b", now=clock)
    assert not locks.exists()


@pytest.mark.parametrize("run_id", ["", "   ", "a\nb", "x" * 201])
def test_invalid_run_ids_are_refused(locks: Path, clock: Clock, run_id: str) -> None:
    with pytest.raises(InvalidInputError, match="run_id"):
        manager(locks, clock).acquire(run_id)
    with pytest.raises(InvalidInputError, match="run_id"):
        manager(locks, clock).release(run_id)
    assert not locks.exists()


@pytest.mark.parametrize("ttl", [0, -5, True])
def test_invalid_ttls_are_refused(locks: Path, clock: Clock, ttl: int) -> None:
    with pytest.raises(InvalidInputError, match="ttl"):
        manager(locks, clock).acquire("run-a", ttl=ttl)
    assert not locks.exists()


def test_a_relative_directory_is_refused(clock: Clock) -> None:
    with pytest.raises(InvalidInputError, match="absolute"):
        LockManager("locks", "web", now=clock)


def test_the_default_directory_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    lock = LockManager(_lock.DEFAULT_DIRECTORY, "web")
    assert lock.path == str(tmp_path / ".ansible" / "fleet-rollout-locks" / "web.lock")


# ---- acquire ----


def test_acquire_creates_the_lock_with_its_owner(locks: Path, clock: Clock) -> None:
    result = manager(locks, clock).acquire("run-a", ttl=600)
    assert result["changed"] is True
    assert result["taken_over"] is False
    assert result["previous_holder"] is None
    assert result["path"] == str(locks / "web.lock")
    assert result["msg"] == "acquired rollout lock 'web' for run run-a"
    assert "warnings" not in result
    lock = result["lock"]
    assert lock["run_id"] == "run-a"
    assert lock["name"] == "web"
    assert lock["acquired_at"] == "2026-01-01T00:00:00+00:00"
    assert lock["expires_at"] == "2026-01-01T00:10:00+00:00"
    assert lock["ttl"] == 600
    assert lock["pid"] == os.getpid()
    assert lock["user"] and lock["host"]
    record = on_disk(locks)
    assert record["format"] == 1
    assert {key: record[key] for key in lock} == lock
    assert len(record["token"]) == 16
    assert "token" not in lock
    assert leftovers(locks) == []


def test_acquire_again_by_the_same_run_changes_nothing(locks: Path, clock: Clock) -> None:
    first = manager(locks, clock).acquire("run-a", ttl=600)
    before = (locks / "web.lock").read_bytes()
    clock.now += 300
    again = manager(locks, clock).acquire("run-a", ttl=9999)
    assert again["changed"] is False
    assert again["lock"] == first["lock"]  # the expiry is not extended
    assert "already held by this run" in again["msg"]
    assert (locks / "web.lock").read_bytes() == before


def test_a_second_run_fails_at_once_naming_the_holder_and_since_when(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a", ttl=3600)
    before = (locks / "web.lock").read_bytes()
    clock.now += 754
    with pytest.raises(ConflictError) as caught:
        manager(locks, clock).acquire("run-b")
    message = caught.value.message
    assert "rollout lock 'web' is held by run run-a" in message
    assert "since 2026-01-01T00:00:00+00:00 (12m 34s ago)" in message
    assert "it expires at 2026-01-01T01:00:00+00:00, in 47m 26s" in message
    assert "run run-b cannot acquire it" in message
    assert "force" in message
    assert caught.value.details["holder"]["run_id"] == "run-a"
    assert caught.value.details["path"] == str(locks / "web.lock")
    assert (locks / "web.lock").read_bytes() == before


def test_the_same_run_id_from_another_controller_is_another_run(locks: Path, clock: Clock) -> None:
    LockManager(str(locks), "web", now=clock, controller="ctl01").acquire("unlocked-play")
    again = LockManager(str(locks), "web", now=clock, controller="ctl01").acquire("unlocked-play")
    with pytest.raises(ConflictError) as caught:
        LockManager(str(locks), "web", now=clock, controller="ctl02").acquire("unlocked-play")
    with pytest.raises(ConflictError):
        LockManager(str(locks), "web", now=clock, controller="ctl02").release("unlocked-play")

    assert again["changed"] is False
    assert "held by run unlocked-play (from controller ctl01, " in caught.value.message
    assert on_disk(locks)["controller"] == "ctl01"


def test_a_lock_of_a_run_this_run_took_over_from_is_handed_over(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a")
    with pytest.raises(ConflictError):
        LockManager(str(locks), "web", now=clock, handed_over_by=["run-c"]).acquire("run-b")

    taken = LockManager(str(locks), "web", now=clock, handed_over_by=["run-a"]).acquire("run-b")

    assert taken["takeover"] == "handed_over" and taken["previous_holder"]["run_id"] == "run-a"
    assert "this run took the rollout over from that run" in taken["msg"]
    assert on_disk(locks)["run_id"] == "run-b"


def test_run_lock_refuses_a_bad_controller_or_handed_over_run(locks: Path) -> None:
    params = {
        "name": "web",
        "state": "acquired",
        "run_id": "r1",
        "ttl": 60,
        "force": False,
        "directory": str(locks),
        "bind_to_controller": False,
    }
    with pytest.raises(InvalidInputError, match="ctl 01"):
        run_lock(dict(params, controller="ctl 01", take_over_from=[]))
    with pytest.raises(InvalidInputError, match="a;b"):
        run_lock(dict(params, controller=None, take_over_from=["a;b"]))
    assert not locks.exists()


def test_an_expired_lock_is_taken_over_and_says_so(locks: Path, clock: Clock) -> None:
    old = manager(locks, clock).acquire("run-a", ttl=60)
    clock.now += 60 + 125
    result = manager(locks, clock).acquire("run-b", ttl=600)
    assert result["changed"] is True
    assert result["taken_over"] is True
    assert result["previous_holder"] == old["lock"]
    assert result["lock"]["run_id"] == "run-b"
    assert result["lock"]["acquired_at"] == "2026-01-01T00:03:05+00:00"
    assert result["msg"].startswith("took over rollout lock 'web' from run run-a (")
    assert "it expired at 2026-01-01T00:01:00+00:00, 2m 05s ago" in result["msg"]
    assert result["warnings"] == [result["msg"]]
    assert on_disk(locks)["run_id"] == "run-b"
    assert leftovers(locks) == []


def test_a_lock_expires_exactly_at_its_expiry(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a", ttl=60)
    clock.now += 59
    with pytest.raises(ConflictError):
        manager(locks, clock).acquire("run-b")
    clock.now += 1
    assert manager(locks, clock).acquire("run-b")["taken_over"] is True


def test_force_takes_a_live_lock_and_names_its_holder(locks: Path, clock: Clock) -> None:
    old = manager(locks, clock).acquire("run-a")
    clock.now += 5
    result = manager(locks, clock).acquire("run-b", force=True)
    assert result["changed"] is True
    assert result["taken_over"] is True
    assert result["previous_holder"] == old["lock"]
    assert "broke rollout lock 'web' held by run run-a" in result["msg"]
    assert "since 2026-01-01T00:00:00+00:00 (5s ago), with force" in result["msg"]
    assert result["warnings"] == [result["msg"]]
    assert on_disk(locks)["run_id"] == "run-b"


def test_force_on_our_own_lock_changes_nothing(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a")
    assert manager(locks, clock).acquire("run-a", force=True)["changed"] is False


def test_our_own_expired_lock_is_renewed(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a", ttl=60)
    clock.now += 61
    result = manager(locks, clock).acquire("run-a", ttl=60)
    assert result["changed"] is True
    assert result["taken_over"] is False
    assert result["previous_holder"] is None
    assert "renewed" in result["msg"]
    assert result["lock"]["expires_at"] == "2026-01-01T00:02:01+00:00"


def test_an_unreadable_lock_file_needs_force(locks: Path, clock: Clock) -> None:
    locks.mkdir()
    (locks / "web.lock").write_text("not json")
    with pytest.raises(ConflictError) as caught:
        manager(locks, clock).acquire("run-a")
    assert "is not a lock record" in caught.value.message
    assert "unreadable" in caught.value.details["holder"]
    result = manager(locks, clock).acquire("run-a", force=True)
    assert result["taken_over"] is True
    assert "unreadable" in result["previous_holder"]
    assert on_disk(locks)["run_id"] == "run-a"


def test_a_record_with_a_wrong_field_is_unreadable(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a")
    record = on_disk(locks)
    record["ttl"] = "3600"
    (locks / "web.lock").write_text(json.dumps(record))
    with pytest.raises(ConflictError, match="ttl is missing or not an integer"):
        manager(locks, clock).acquire("run-a")


def test_locks_of_different_names_are_independent(locks: Path, clock: Clock) -> None:
    LockManager(str(locks), "web", now=clock).acquire("run-a")
    assert LockManager(str(locks), "db", now=clock).acquire("run-b")["changed"] is True
    assert sorted(p.name for p in locks.glob("*.lock")) == ["db.lock", "web.lock"]


# ---- release ----


def test_the_holder_releases(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a")
    result = manager(locks, clock).release("run-a")
    assert result["changed"] is True
    assert result["lock"] is None
    assert result["previous_holder"] is None
    assert result["taken_over"] is False
    assert result["msg"] == "released rollout lock 'web' of run run-a"
    assert not (locks / "web.lock").exists()
    assert leftovers(locks) == []
    assert manager(locks, clock).acquire("run-b")["taken_over"] is False


def test_releasing_a_lock_that_is_not_held_changes_nothing(locks: Path, clock: Clock) -> None:
    result = manager(locks, clock).release("run-a")
    assert result["changed"] is False
    assert result["lock"] is None
    assert not locks.exists()  # not even the directory
    manager(locks, clock).acquire("run-a")
    manager(locks, clock).release("run-a")
    assert manager(locks, clock).release("run-a")["changed"] is False


def test_only_the_holder_can_release(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a")
    before = (locks / "web.lock").read_bytes()
    with pytest.raises(ConflictError) as caught:
        manager(locks, clock).release("run-b")
    assert "is held by run run-a" in caught.value.message
    assert "only its holder can release it, not run run-b" in caught.value.message
    assert caught.value.details["holder"]["run_id"] == "run-a"
    assert (locks / "web.lock").read_bytes() == before


def test_an_expired_lock_of_another_run_is_not_released_either(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a", ttl=60)
    clock.now += 3600
    with pytest.raises(ConflictError, match="it expired at 2026-01-01T00:01:00"):
        manager(locks, clock).release("run-b")


def test_force_releases_whoever_holds_it_and_says_whom(locks: Path, clock: Clock) -> None:
    old = manager(locks, clock).acquire("run-a")
    result = manager(locks, clock).release("operator", force=True)
    assert result["changed"] is True
    assert result["previous_holder"] == old["lock"]
    assert result["taken_over"] is False
    assert "broke rollout lock 'web' held by run run-a" in result["msg"]
    assert result["warnings"] == [result["msg"]]
    assert not (locks / "web.lock").exists()


def test_force_releases_an_unreadable_lock(locks: Path, clock: Clock) -> None:
    locks.mkdir()
    (locks / "web.lock").write_bytes(b"\xff\xfe")
    result = manager(locks, clock).release("operator", force=True)
    assert "unreadable" in result["previous_holder"]
    assert not (locks / "web.lock").exists()


# ---- check mode and diff ----


def test_check_mode_predicts_an_acquire_and_creates_nothing(locks: Path, clock: Clock) -> None:
    result = manager(locks, clock, check_mode=True).acquire("run-a")
    assert result["changed"] is True
    assert result["lock"]["run_id"] == "run-a"
    assert "check mode" in result["msg"]
    assert not locks.exists()


def test_check_mode_sees_our_own_lock_as_unchanged(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a")
    assert manager(locks, clock, check_mode=True).acquire("run-a")["changed"] is False


def test_check_mode_predicts_a_takeover_and_a_release(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a", ttl=60)
    before = (locks / "web.lock").read_bytes()
    listing = sorted(os.listdir(locks))
    clock.now += 61
    takeover = manager(locks, clock, check_mode=True).acquire("run-b")
    assert takeover["changed"] is True
    assert takeover["taken_over"] is True
    assert takeover["previous_holder"]["run_id"] == "run-a"
    assert takeover["warnings"] == [takeover["msg"]]
    release = manager(locks, clock, check_mode=True).release("run-a")
    assert release["changed"] is True
    assert release["lock"] is None
    assert (locks / "web.lock").read_bytes() == before
    assert sorted(os.listdir(locks)) == listing


def test_check_mode_still_fails_on_a_live_holder(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a")
    with pytest.raises(ConflictError, match="held by run run-a"):
        manager(locks, clock, check_mode=True).acquire("run-b")
    with pytest.raises(ConflictError, match="only its holder"):
        manager(locks, clock, check_mode=True).release("run-b")


def test_the_diff_shows_the_owner_before_and_after(locks: Path, clock: Clock) -> None:
    acquired = manager(locks, clock).acquire("run-a")["diff"]
    assert acquired["before"] == ""
    assert "run_id: run-a\n" in acquired["after"]
    assert acquired["before_header"] == acquired["after_header"] == str(locks / "web.lock")
    clock.now += 3601
    taken = manager(locks, clock).acquire("run-b")["diff"]
    assert "run_id: run-a\n" in taken["before"]
    assert "run_id: run-b\n" in taken["after"]
    kept = manager(locks, clock).acquire("run-b")["diff"]
    assert kept["before"] == kept["after"]
    released = manager(locks, clock).release("run-b")["diff"]
    assert "run_id: run-b\n" in released["before"]
    assert released["after"] == ""


# ---- the module's runner ----


def params(locks: Path, **overrides: t.Any) -> dict[str, t.Any]:
    base = {
        "name": "web",
        "state": "acquired",
        "run_id": "run-a",
        "ttl": 3600,
        "force": False,
        "directory": str(locks),
    }
    return {**base, **overrides}


def test_run_lock_acquires_and_releases(locks: Path) -> None:
    acquired = run_lock(params(locks))
    assert acquired["changed"] is True
    assert "diff" not in acquired
    assert run_lock(params(locks), diff=True)["diff"]["before"].startswith("name: web\n")
    released = run_lock(params(locks, state="released"))
    assert released["changed"] is True
    assert not (locks / "web.lock").exists()


def test_run_lock_in_check_mode(locks: Path) -> None:
    assert run_lock(params(locks), check_mode=True)["changed"] is True
    assert not locks.exists()


def test_filesystem_errors_say_what_was_done(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(FleetRolloutError) as caught:
        run_lock(params(blocker / "locks"))
    assert "acquiring rollout lock 'web' in" in caught.value.message
    assert caught.value.details["path"] == str(blocker / "locks" / "web.lock")


# ---- the guard ----


def test_the_guard_is_waited_for_and_times_out(locks: Path, clock: Clock) -> None:
    manager(locks, clock).acquire("run-a")
    with open(locks / ".web.guard", "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        slow = LockManager(str(locks), "web", now=clock, guard_timeout=0.2)
        with pytest.raises(TimeoutExpiredError, match=r"another process held .*\.web\.guard"):
            slow.release("run-a")
    assert (locks / "web.lock").exists()
    assert manager(locks, clock).release("run-a")["changed"] is True


def test_without_flock_the_lock_still_works(locks: Path, clock: Clock) -> None:
    with mock.patch.object(fcntl, "flock", side_effect=OSError(errno.ENOLCK, "No locks available")):
        manager(locks, clock).acquire("run-a", ttl=60)
        with pytest.raises(ConflictError):
            manager(locks, clock).acquire("run-b")
        clock.now += 60
        assert manager(locks, clock).acquire("run-b")["taken_over"] is True
        assert manager(locks, clock).release("run-b")["changed"] is True
    assert leftovers(locks) == []


def test_a_rename_that_moved_a_newer_lock_puts_it_back(locks: Path, clock: Clock) -> None:
    """The ABA case without flock: the lock judged expired was replaced before our rename."""
    manager(locks, clock).acquire("run-a", ttl=60)
    clock.now += 61
    lock = manager(locks, clock)
    judged = lock._read()
    assert judged is not None
    # Another taker replaces run-a's expired lock with its own before our rename.
    manager(locks, clock).acquire("run-b")
    newer = (locks / "web.lock").read_bytes()
    assert lock._remove(judged, "taken-over") is False
    assert (locks / "web.lock").read_bytes() == newer
    assert leftovers(locks) == []


# ---- real races: processes that start acquiring at the same moment ----

RACERS = 8
ROUNDS = 5


def race(
    directory: str,
    run_id: str,
    barrier: t.Any,
    results: t.Any,
    without_flock: bool,
) -> None:
    """One racer, in its own process: wait for the others, then acquire."""
    patcher = mock.patch.object(fcntl, "flock", side_effect=OSError(errno.ENOLCK, "No locks available"))
    if without_flock:
        patcher.start()
    barrier.wait()
    try:
        result = LockManager(directory, "web").acquire(run_id, ttl=600)
        results.put((run_id, "won", result["taken_over"]))
    except ConflictError as exc:
        results.put((run_id, "lost", exc.details["holder"]["run_id"]))
    except Exception as exc:  # noqa: BLE001 - the test reports anything unexpected
        results.put((run_id, "error", repr(exc)))


def run_race(directory: Path, racers: int, without_flock: bool = False) -> list[tuple[str, str, t.Any]]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(racers)
    results = context.Queue()
    processes = [
        context.Process(target=race, args=(str(directory), f"run-{i}", barrier, results, without_flock))
        for i in range(racers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return outcomes


def assert_one_winner(outcomes: list[tuple[str, str, t.Any]], locks: Path, taken_over: bool | None) -> None:
    assert [o for o in outcomes if o[1] == "error"] == []
    winners = [o for o in outcomes if o[1] == "won"]
    assert len(winners) == 1, outcomes
    winner, _, was_taken_over = winners[0]
    if taken_over is not None:
        assert was_taken_over is taken_over
    # Every loser was told who won, and the lock on disk is the winner's.
    assert {o[2] for o in outcomes if o[1] == "lost"} <= {winner}
    assert on_disk(locks)["run_id"] == winner
    assert leftovers(locks) == []


def make_stale(locks: Path) -> None:
    LockManager(str(locks), "web", now=lambda: T0).acquire("stale-run", ttl=60)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_racing_for_a_free_lock_has_exactly_one_winner(locks: Path, round_: int) -> None:
    assert_one_winner(run_race(locks, RACERS), locks, taken_over=False)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_racing_to_take_over_an_expired_lock_has_exactly_one_winner(locks: Path, round_: int) -> None:
    make_stale(locks)
    outcomes = run_race(locks, RACERS)
    assert_one_winner(outcomes, locks, taken_over=True)
    # The losers looked after the winner and saw its fresh lock, not the expired one.
    assert "stale-run" not in {o[2] for o in outcomes}


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_without_flock_racing_for_a_free_lock_has_exactly_one_winner(locks: Path, round_: int) -> None:
    assert_one_winner(run_race(locks, RACERS, without_flock=True), locks, taken_over=False)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_without_flock_two_takers_of_an_expired_lock_have_one_winner(locks: Path, round_: int) -> None:
    make_stale(locks)
    # The loser may be the one that removed the expired lock before the winner created its own; the
    # winner then saw a free lock. Either way exactly one run holds it.
    assert_one_winner(run_race(locks, 2, without_flock=True), locks, taken_over=None)


def test_record_round_trip() -> None:
    record = LockRecord.new("web", "run-a", 60, T0)
    assert LockRecord.from_json(record.to_json()) == record
    with pytest.raises(ValueError, match="format"):
        LockRecord.from_json(b'{"format": 2}')
