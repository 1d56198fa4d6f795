"""fleet.rollout.rollout_lock through real ansible-playbook runs on localhost, in the controller and as a
module on another Python, and two or more playbooks racing for the same lock."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import typing as t
from pathlib import Path

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._lock import LockManager
from ansible_collections.fleet.rollout.plugins.module_utils._lock_record import Holder

from tests.support import (
    VENV_BIN,
    VENV_PYTHON,
    PlaybookRun,
    ansible_env,
    empty_config,
    oldest_python,
    run_local_tasks,
    run_on_localhost,
    run_playbook,
)

OLDEST_PYTHON = oldest_python()
# In the controller (the action plugin runs the module_utils code), and as a shipped module on the oldest
# Python a managed host may have.
ON_OLDEST_PYTHON = pytest.mark.skipif(OLDEST_PYTHON is None, reason="no Python 3.8 on this machine")
PYTHONS = [
    pytest.param(str(VENV_PYTHON), id="controller"),
    pytest.param(OLDEST_PYTHON, id="module-py38", marks=ON_OLDEST_PYTHON),
]


def temp_env(tmp_path: Path) -> dict[str, str]:
    return {
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / ".ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / ".ansible-remote"),
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """temp_env, and an empty ansible.cfg (as run_play uses) for runs started here directly."""
    return {**temp_env(tmp_path), "ANSIBLE_CONFIG": str(empty_config(tmp_path / "config"))}


def lock_task(locks: Path, run_id: str, **options: t.Any) -> dict[str, t.Any]:
    return {
        "name": f"Lock {options.get('state', 'acquired')} by {run_id}",
        "fleet.rollout.rollout_lock": {"name": "web", "run_id": run_id, "directory": str(locks), **options},
    }


def run_lock_tasks(
    tmp_path: Path, tasks: list[dict[str, t.Any]], *args: str, python: str = str(VENV_PYTHON)
) -> tuple[PlaybookRun, list[dict[str, t.Any]]]:
    """Run the tasks on localhost, failures ignored; return the run and every task's result in order."""
    return run_local_tasks(
        tmp_path / "play", tasks, *args, python=python, ignore_errors=True, **temp_env(tmp_path)
    )


def make_stale(locks: Path, run_id: str = "stale-run") -> dict[str, t.Any]:
    """A lock acquired two hours ago with a one-hour TTL, as an earlier run that died would leave it."""
    stale = LockManager(str(locks), "web", now=lambda: time.time() - 7200).acquire(run_id, ttl=3600)
    return t.cast(dict[str, t.Any], stale["lock"])


@pytest.mark.parametrize("python", PYTHONS)
def test_acquire_is_idempotent_also_in_check_mode(tmp_path: Path, python: str) -> None:
    locks = tmp_path / "locks"
    _run, [predicted] = run_lock_tasks(
        tmp_path, [lock_task(locks, "run-a")], "--check", "--diff", python=python
    )
    assert predicted["changed"] is True
    assert predicted["lock"]["run_id"] == "run-a"
    assert "check mode" in predicted["msg"]
    assert not locks.exists()

    run, [acquired, again] = run_lock_tasks(
        tmp_path, [lock_task(locks, "run-a", ttl=600), lock_task(locks, "run-a")], python=python
    )
    assert acquired["changed"] is True
    assert acquired["taken_over"] is False
    assert acquired["path"] == str(locks / "web.lock")
    assert again["changed"] is False
    assert again["lock"] == acquired["lock"]
    assert acquired["lock"]["ttl"] == 600
    assert run.recap("localhost")["changed"] == 1
    on_disk = json.loads((locks / "web.lock").read_text())
    assert on_disk["run_id"] == "run-a"
    assert on_disk["expires_at"] == acquired["lock"]["expires_at"]

    run, [checked] = run_lock_tasks(tmp_path, [lock_task(locks, "run-a")], "--check", "--diff", python=python)
    assert checked["changed"] is False
    assert run.recap("localhost")["changed"] == 0


@pytest.mark.parametrize("python", PYTHONS)
def test_a_second_run_fails_at_once_naming_the_holder_and_since_when(tmp_path: Path, python: str) -> None:
    locks = tmp_path / "locks"
    _run, [held] = run_lock_tasks(tmp_path, [lock_task(locks, "run-a")], python=python)
    playbook = tmp_path / "second.yml"
    play = {"hosts": "localhost", "gather_facts": False, "tasks": [lock_task(locks, "run-b")]}
    playbook.write_text(json.dumps([play]))
    run = run_on_localhost(
        playbook,
        python=python,
        timeout=120,
        **isolated_env(tmp_path),
    )
    assert run.rc == 2, run.stdout[-3000:]
    assert run.recap("localhost")["failed"] == 1
    assert "rollout lock 'web' is held by run run-a" in run.stdout
    assert f"since {held['lock']['acquired_at']}" in run.stdout
    assert "run run-b cannot acquire it" in run.stdout
    assert json.loads((locks / "web.lock").read_text())["run_id"] == "run-a"
    # At once: the task does not wait for the holder (timed inside the run, so ansible's start-up and a
    # loaded machine do not count).
    clock = {"ansible.builtin.set_fact": {"at": "{{ now().timestamp() }}"}}
    _run, [before, refused, after] = run_lock_tasks(
        tmp_path, [clock, lock_task(locks, "run-b"), clock], python=python
    )
    assert refused["failed"] is True
    assert float(after["ansible_facts"]["at"]) - float(before["ansible_facts"]["at"]) < 10


@pytest.mark.parametrize("python", PYTHONS)
def test_an_expired_lock_is_taken_over_with_a_warning(tmp_path: Path, python: str) -> None:
    locks = tmp_path / "locks"
    stale = make_stale(locks)
    run, [taken] = run_lock_tasks(tmp_path, [lock_task(locks, "run-b")], "--diff", python=python)
    assert taken["changed"] is True
    assert taken["taken_over"] is True
    assert taken["previous_holder"] == stale
    assert taken["lock"]["run_id"] == "run-b"
    assert taken["msg"].startswith("took over rollout lock 'web' from run stale-run")
    assert f"it expired at {stale['expires_at']}" in taken["msg"]
    output = run.stdout + run.stderr
    assert "[WARNING]: took over rollout lock 'web' from run stale-run" in output
    assert "-run_id: stale-run" in output
    assert "+run_id: run-b" in output


@pytest.mark.parametrize("python", PYTHONS)
def test_only_the_holder_releases_and_force_breaks(tmp_path: Path, python: str) -> None:
    locks = tmp_path / "locks"
    run, [acquired, refused, in_check] = run_lock_tasks(
        tmp_path,
        [
            lock_task(locks, "run-a"),
            lock_task(locks, "run-b", state="released"),
            {**lock_task(locks, "run-a", state="released"), "check_mode": True},
        ],
        python=python,
    )
    assert refused["failed"] is True
    assert "is held by run run-a" in refused["msg"]
    assert "only its holder can release it, not run run-b" in refused["msg"]
    assert refused["holder"]["run_id"] == "run-a"
    assert in_check["changed"] is True
    assert (locks / "web.lock").exists()

    run, [broken, gone] = run_lock_tasks(
        tmp_path,
        [
            lock_task(locks, "operator", state="released", force=True),
            lock_task(locks, "run-a", state="released"),
        ],
        python=python,
    )
    assert broken["changed"] is True
    assert broken["previous_holder"] == acquired["lock"]
    assert "[WARNING]: broke rollout lock 'web' held by run run-a" in run.stdout + run.stderr
    assert gone["changed"] is False
    assert gone["lock"] is None
    assert not (locks / "web.lock").exists()


def test_the_holder_releases_and_force_takes_a_live_lock(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    _run, [first, forced, released, refused] = run_lock_tasks(
        tmp_path,
        [
            lock_task(locks, "run-a"),
            lock_task(locks, "run-b", force=True),
            lock_task(locks, "run-b", state="released"),
            lock_task(locks, "run-a", state="released"),
        ],
    )
    assert forced["taken_over"] is True
    assert forced["previous_holder"] == first["lock"]
    assert "broke rollout lock 'web' held by run run-a" in forced["msg"]
    assert released["changed"] is True
    assert refused["changed"] is False  # run-a's lock was broken; nothing left to release
    assert [p.name for p in locks.iterdir()] == [".web.guard"]


@pytest.mark.parametrize(
    ("python", "in_process"),
    [(str(VENV_PYTHON), True), pytest.param(OLDEST_PYTHON, False, marks=PYTHONS[1].marks)],
)
def test_the_controller_runs_it_without_a_module(tmp_path: Path, python: str, in_process: bool) -> None:
    run, [acquired] = run_lock_tasks(
        tmp_path, [lock_task(tmp_path / "locks", "run-a")], "-vvv", python=python
    )
    assert acquired["changed"] is True
    assert ("AnsiballZ_rollout_lock.py" in run.stdout) is not in_process


def test_an_invalid_name_fails_naming_it(tmp_path: Path) -> None:
    task = lock_task(tmp_path / "locks", "run-a")
    task["fleet.rollout.rollout_lock"]["name"] = "web; rm -rf /"
    _run, [refused] = run_lock_tasks(tmp_path, [task])
    assert refused["failed"] is True
    assert "invalid lock name 'web; rm -rf /'" in refused["msg"]
    assert not (tmp_path / "locks").exists()


# ---- playbooks started at the same moment ----


def racing_playbook(tmp_path: Path, locks: Path, go: Path) -> Path:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            # Every playbook is up and polling (every 5 ms, in the controller); the test then starts them
            # all at once. wait_for polls only once a second.
            {
                "name": "Wait for the start",
                "ansible.builtin.debug": {"msg": "waiting"},
                "until": f"'{go}' is exists",
                "retries": 100000,
                "delay": 0.005,
            },
            {
                "name": "Take the lock",
                "fleet.rollout.rollout_lock": {
                    "name": "web",
                    "run_id": "{{ run_id }}",
                    "directory": str(locks),
                },
            },
        ],
    }
    playbook = tmp_path / "race.yml"
    playbook.write_text(json.dumps([play]))
    return playbook


@pytest.mark.parametrize("playbooks", [2, 4])
def test_playbooks_started_together_have_exactly_one_winner(tmp_path: Path, playbooks: int) -> None:
    locks, go = tmp_path / "locks", tmp_path / "go"
    playbook = racing_playbook(tmp_path, locks, go)
    env = ansible_env(**isolated_env(tmp_path))
    command = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    command += ["-e", f"ansible_python_interpreter={VENV_PYTHON}"]
    processes = [
        subprocess.Popen(
            [*command, "-e", f"run_id=run-{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(playbooks)
    ]
    try:
        time.sleep(3)  # long enough for every ansible-playbook to reach wait_for
        go.touch()
        outputs = [process.communicate(timeout=120)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    codes = [process.returncode for process in processes]
    winners = [i for i, code in enumerate(codes) if code == 0]
    assert len(winners) == 1, "\n\n".join(outputs)
    winner = f"run-{winners[0]}"
    assert json.loads((locks / "web.lock").read_text())["run_id"] == winner
    for i, (code, output) in enumerate(zip(codes, outputs, strict=True)):
        if i != winners[0]:
            assert code == 2, output
            assert f"rollout lock 'web' is held by run {winner}" in output


# ---- the tasks proposed for playbooks/deploy.yml: first play takes, last play releases ----

DEPLOY_LIKE = r"""
- name: Preflight - take the rollout lock, then check every target
  hosts: app
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - name: Make this run's id and the name of its lock
      ansible.builtin.set_fact:
        deploy_run_id: >-
          {{ lookup('ansible.builtin.password', '/dev/null',
                    chars=['ascii_lowercase', 'digits'], length=16) }}
        deploy_lock_name: "{{ deploy_target | default('app') | regex_replace('[^A-Za-z0-9_.-]', '_') }}"
      delegate_to: localhost
      delegate_facts: true
      run_once: true

    - name: Take the rollout lock
      fleet.rollout.rollout_lock:
        name: "{{ hostvars['localhost'].deploy_lock_name }}"
        run_id: "{{ hostvars['localhost'].deploy_run_id }}"
        ttl: "{{ deploy_lock_ttl | default(3600) }}"
        directory: "{{ deploy_lock_dir | default(omit) }}"
      delegate_to: "{{ deploy_lock_host | default('localhost') }}"
      run_once: true

    - name: Check every target, or give the rollout lock back
      block:
        - name: Stand-in for the preflight checks
          ansible.builtin.assert:
            that: inventory_hostname not in (fail_preflight | default([]))
            quiet: true
      rescue:
        - name: Give the rollout lock back; nothing was changed on any host
          fleet.rollout.rollout_lock:
            name: "{{ hostvars['localhost'].deploy_lock_name }}"
            state: released
            run_id: "{{ hostvars['localhost'].deploy_run_id }}"
            directory: "{{ deploy_lock_dir | default(omit) }}"
          delegate_to: "{{ deploy_lock_host | default('localhost') }}"
          run_once: true

        - name: Fail the preflight
          ansible.builtin.fail:
            msg: >-
              {{ ansible_failed_result.msg if ansible_failed_result is defined
                 else 'the preflight failed on another host' }}; the rollout lock was given back

- name: Roll (stand-in)
  hosts: app
  strategy: fleet.rollout.rolling
  gather_facts: false
  tasks:
    - name: Fail where asked
      ansible.builtin.fail:
        msg: the roll halts
      when: inventory_hostname in (fail_roll | default([]))

- name: Revert (stand-in)
  hosts: app
  strategy: fleet.rollout.rolling
  gather_facts: false
  tasks:
    - name: Take the host back
      ansible.builtin.debug:
        msg: reverted
      when: ansible_play_hosts_all | difference(ansible_play_hosts) | length > 0

- name: Report how the rollout ended
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Release the rollout lock, whatever happened to the roll
      fleet.rollout.rollout_lock:
        name: "{{ deploy_lock_name }}"
        state: released
        run_id: "{{ deploy_run_id }}"
        directory: "{{ deploy_lock_dir | default(omit) }}"
      delegate_to: "{{ deploy_lock_host | default('localhost') }}"
      when: deploy_run_id is defined
"""


def run_deploy_like(tmp_path: Path, locks: Path, *args: str) -> PlaybookRun:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[app]\n"
        + "".join(
            f"app0{i} ansible_connection=local ansible_python_interpreter={VENV_PYTHON}\n" for i in (1, 2, 3)
        )
    )
    playbook = tmp_path / "deploy.yml"
    playbook.write_text(DEPLOY_LIKE)
    return run_playbook(
        playbook,
        inventory,
        "-e",
        f"deploy_lock_dir={locks}",
        "-e",
        f"ansible_python_interpreter={VENV_PYTHON}",
        *args,
        timeout=180,
        **isolated_env(tmp_path),
    )


@pytest.mark.parametrize(
    ("args", "rc"),
    [
        pytest.param([], 0, id="rolled"),
        pytest.param(["--check"], 0, id="check-mode"),
        pytest.param(["-e", '{"fail_roll": ["app01"]}'], 2, id="halted-at-the-canary"),
        pytest.param(
            ["-e", '{"fail_roll": ["app01", "app02", "app03"], "rollout_canary": 0, "rollout_window": 3}'],
            2,
            id="every-host-failed",
        ),
        pytest.param(["-e", '{"fail_preflight": ["app02"]}'], 2, id="preflight-failed"),
    ],
)
def test_the_deploy_playbook_pattern_always_gives_the_lock_back(
    tmp_path: Path, args: list[str], rc: int
) -> None:
    locks = tmp_path / "locks"
    run = run_deploy_like(tmp_path, locks, *args)
    assert run.rc == rc, run.stdout[-4000:]
    assert not (locks / "app.lock").exists(), run.stdout[-4000:]
    assert "changed: [app01 -> localhost]" in run.stdout  # the lock was taken, in the first play


def test_the_deploy_playbook_pattern_stops_before_preflight_when_locked(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    held = LockManager(str(locks), "app").acquire("other-run")["lock"]
    run = run_deploy_like(tmp_path, locks)
    assert run.rc == 2
    assert "rollout lock 'app' is held by run other-run" in run.stdout
    assert f"since {held['acquired_at']}" in run.stdout
    assert "Stand-in for the preflight checks" not in run.stdout
    assert "Roll (stand-in)" not in run.stdout
    assert json.loads((locks / "app.lock").read_text())["run_id"] == "other-run"


# ---- dead holders and deploy_lock_force, through the playbooks' own take_lock.yml (issue 14, item 3) ----

PLAYBOOK_TASKS = Path(__file__).resolve().parents[2] / "playbooks" / "tasks"
# The Python ansible-playbook itself runs on, named as its shebang names it: a lock task with it as the
# interpreter runs inside the controller (the venv may be a symlink, whose other path would ship a module).
CONTROLLER_PYTHON = (VENV_BIN / "ansible-playbook").read_text().splitlines()[0].removeprefix("#!").strip()


def take_lock_playbook(tmp_path: Path, go: Path) -> Path:
    """The deploy playbook's lock tasks on localhost: take, hold until ``go`` exists when hold=true,
    release."""
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.import_tasks": str(PLAYBOOK_TASKS / "take_lock.yml")},
            {
                "name": "Hold the lock",
                "ansible.builtin.debug": {"msg": "holding"},
                "until": f"'{go}' is exists",
                "retries": 100000,
                "delay": 0.05,
                "when": "hold | default(false) | bool",
            },
            {"ansible.builtin.import_tasks": str(PLAYBOOK_TASKS / "release_lock.yml")},
        ],
    }
    playbook = tmp_path / "take_lock.yml"
    playbook.write_text(json.dumps([play]))
    return playbook


def one_line(run: PlaybookRun) -> str:
    """stdout and stderr (warnings) with every line break a space: a wrapped warning reads whole."""
    return " ".join((run.stdout + run.stderr).split())


def test_a_lock_whose_ansible_playbook_was_killed_is_taken_over_at_once(tmp_path: Path) -> None:
    locks, go = tmp_path / "locks", tmp_path / "go"
    playbook = take_lock_playbook(tmp_path, go)
    command = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    command += ["-e", f"ansible_python_interpreter={CONTROLLER_PYTHON}", "-e", f"deploy_lock_dir={locks}"]
    holder = subprocess.Popen(
        [*command, "-e", "hold=true"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ansible_env(**isolated_env(tmp_path)),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (locks / "app.lock").exists() and time.monotonic() < deadline and holder.poll() is None:
            time.sleep(0.1)
        held = json.loads((locks / "app.lock").read_text())
        assert held["holder_pid"] == holder.pid  # the ansible-playbook process, not its worker
        holder.send_signal(signal.SIGKILL)  # no atexit, no callback: the lock stays behind
        holder.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(holder.pid, signal.SIGKILL)  # its orphaned worker, still polling
        holder.wait()
    assert json.loads((locks / "app.lock").read_text())["run_id"] == held["run_id"]

    run = run_on_localhost(
        playbook,
        "-e",
        f"deploy_lock_dir={locks}",
        python=CONTROLLER_PYTHON,
        timeout=120,
        **isolated_env(tmp_path),
    )
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
    output = one_line(run)
    assert f"took over rollout lock 'app' from run {held['run_id']}" in output
    assert f"its ansible-playbook process {holder.pid} on {held['host']} is gone" in output
    assert not (locks / "app.lock").exists()  # and the run gave it back as usual


def test_deploy_lock_force_breaks_a_live_lock_and_the_journal_records_it(tmp_path: Path) -> None:
    locks, journals = tmp_path / "locks", tmp_path / "journal"
    playbook = take_lock_playbook(tmp_path, tmp_path / "go")
    # A live holder on this host: this test's own process.
    held = LockManager(str(locks), "app", holder=Holder.of(os.getpid())).acquire("other-run")["lock"]
    journal_env = {**isolated_env(tmp_path), "ANSIBLE_CALLBACKS_ENABLED": "fleet.rollout.rollout_journal"}
    args = ["-e", f"deploy_lock_dir={locks}", "-e", f"rollout_journal_dir={journals}"]

    refused = run_on_localhost(playbook, *args, timeout=120, **journal_env)
    assert refused.rc == 2, refused.stdout[-3000:]
    assert "rollout lock 'app' is held by run other-run" in refused.stdout
    assert json.loads((locks / "app.lock").read_text())["run_id"] == "other-run"
    assert all("lock_takeovers" not in json.loads(p.read_text()) for p in journals.glob("*.json"))

    forced = run_on_localhost(playbook, *args, "-e", "deploy_lock_force=true", timeout=120, **journal_env)
    assert forced.rc == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
    assert f"broke rollout lock 'app' held by run other-run ({held['user']} on {held['host']}" in one_line(
        forced
    )
    assert not (locks / "app.lock").exists()
    audited = [json.loads(p.read_text()) for p in journals.glob("*.json")]
    [takeover] = [entry for journal in audited for entry in journal.get("lock_takeovers", [])]
    assert takeover["takeover"] == "forced"
    assert takeover["previous_holder"] == held
    assert takeover["msg"].startswith("broke rollout lock 'app' held by run other-run")
