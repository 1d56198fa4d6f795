"""The callback fleet.rollout.rollout_journal on real ansible-playbook runs.

On the lab: the deploy playbook's journal of a rollout (every host's steps in order, with times), of a
failed canary (its recover step, the others untouched, the run halted), and of a run killed with SIGKILL
(a whole JSON journal that says it was still running). Without the lab, on each ansible-core of the
version matrix: a small role laid out as the deploy role is (its task files are the phases), under the
rolling strategy and under linear batches, with the callback enabled from an ansible.cfg.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from lab.fleet import Lab
from tests.support import (
    ROOT,
    VENV_BIN,
    Core,
    ansible_env,
    core_matrix,
    descendants,
    run_deploy,
    run_playbook,
)

CALLBACK = "fleet.rollout.rollout_journal"
CYCLE = ["stage", "drain", "switch", "verify", "enable"]
RUN_FILE = re.compile(r"^\d{8}T\d{6}Z-\d+-app\.json$")


def journals(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.json")) if directory.exists() else []


def only_journal(directory: Path, *, killed: bool = False) -> dict[str, Any]:
    """The one journal of the run in ``directory``. A run that ended by itself left no temporary file
    (one killed in the middle of a write may leave one, hidden, beside the journal)."""
    found = journals(directory)
    assert len(found) == 1, found
    assert RUN_FILE.match(found[0].name), found[0].name
    assert killed or not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
    data: dict[str, Any] = json.loads(found[0].read_text())
    return data


def when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def step_names(host: dict[str, Any]) -> list[str]:
    return [phase["phase"] for phase in host["phases"]]


def in_order(names: list[str], wanted: list[str]) -> bool:
    """``wanted`` appears in ``names`` in that order (other steps may come between)."""
    remaining = iter(names)
    return all(name in remaining for name in wanted)


def assert_times_are_consistent(host: dict[str, Any]) -> None:
    """Each phase ends after it starts, and the next one starts after it ended."""
    previous_end = 0.0
    for phase in host["phases"]:
        start, end = when(phase["started_at"]), when(phase["ended_at"])
        assert previous_end <= start <= end, host["phases"]
        assert phase["seconds"] == pytest.approx(end - start, abs=0.002)
        previous_end = end


def deploy(lab: Lab, journal_dir: Path, version: str, *extra: str, **behaviour: object) -> tuple[int, str]:
    run = run_deploy(
        lab.inventory,
        version,
        lab.build(version, **behaviour),
        "-e",
        f"rollout_journal_dir={journal_dir}",
        *extra,
        timeout=300,
        ANSIBLE_CALLBACKS_ENABLED=CALLBACK,
    )
    return run.rc, run.stdout + run.stderr


@pytest.mark.lab(hosts=3)
def test_a_rollout_journals_every_step_of_every_host(lab: Lab, tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    rc, output = deploy(lab, journal_dir, "v2", "-e", "rollout_window=2")
    assert rc == 0, output[-4000:]
    journal = only_journal(journal_dir)
    assert f"ROLLOUT JOURNAL: {journals(journal_dir)[0]} (succeeded)" in output
    assert {key: journal[key] for key in ("target", "version", "window", "canary", "strategy", "result")} == {
        "target": "app",
        "version": "v2",
        "window": 2,
        "canary": 1,
        "strategy": "fleet.rollout.rolling",
        "result": "succeeded",
    }
    assert when(journal["started_at"]) <= when(journal["finished_at"]) <= when(journal["updated_at"])
    assert set(journal["hosts"]) == {"app01", "app02", "app03"}  # not the report play's localhost
    assert journal["summary"]["ok"] == ["app01", "app02", "app03"]
    for name, host in journal["hosts"].items():
        assert host["outcome"] == "ok", (name, host)
        assert step_names(host)[0] == "preflight", (name, host)
        assert in_order(step_names(host), CYCLE), (name, step_names(host))
        assert_times_are_consistent(host)
        assert {phase["outcome"] for phase in host["phases"]} <= {"ok", "changed"}
        assert "running" not in host
    # after the canary, app02 and app03 went through their cycles at the same time (window 2), and the
    # journal kept their interleaved results apart
    # (every host staged ahead at once, before the first drain: the cycle is what follows)
    cycle = {
        name: [p for p in host["phases"] if p["phase"] not in ("preflight", "stage")]
        for name, host in journal["hosts"].items()
    }
    span = {name: (when(p[0]["started_at"]), when(p[-1]["ended_at"])) for name, p in cycle.items()}
    assert span["app01"][1] <= min(span["app02"][0], span["app03"][0])
    assert span["app02"][0] < span["app03"][1] and span["app03"][0] < span["app02"][1], span


@pytest.mark.lab(hosts=3)
def test_a_failed_canary_is_journaled_with_its_recovery_and_the_others_untouched(
    lab: Lab, tmp_path: Path
) -> None:
    journal_dir = tmp_path / "journal"
    rc, output = deploy(
        lab,
        journal_dir,
        "v3",
        "-e",
        '{"deploy_health": {"deadline": 3}}',
        "-e",
        "rollout_window=2",
        health_fail=True,
    )
    assert rc != 0, output[-4000:]
    journal = only_journal(journal_dir)
    assert (journal["result"], journal["version"]) == ("halted", "v3")
    assert journal["summary"] == {
        "ok": [],
        "reverted": [],
        "failed": ["app01"],
        "unreachable": [],
        "untouched": ["app02", "app03"],
    }
    canary = journal["hosts"]["app01"]
    assert canary["outcome"] == "failed"
    assert "deploying v3 failed at 'Health-check the release'" in canary["msg"]
    steps = step_names(canary)
    assert in_order(steps, ["stage", "drain", "switch", "verify", "recover"]), steps
    assert steps[-1] == "recover" and "enable" not in steps, steps  # the enable of the recovery is recover's
    verify = canary["phases"][steps.index("verify")]
    assert verify["outcome"] == "failed" and "status 500" in verify["msg"], verify
    assert verify["failed_task"].endswith("Health-check the release")
    assert canary["phases"][-1]["outcome"] == "failed"
    assert_times_are_consistent(canary)
    for name in ("app02", "app03"):
        host = journal["hosts"][name]
        # staged ahead with every target, before the first drain; no step of the cycle
        assert (host["outcome"], step_names(host)) == ("untouched", ["preflight", "stage"]), host


def start_journaled_deploy(
    lab: Lab, journal_dir: Path, artifact: Path, *extra: str, output: int = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    """The deploy playbook of v2 from ``artifact`` in the background, ``extra`` its arguments, its journal
    written to ``journal_dir`` every 0.05 s; its output and errors go to ``output``."""
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(lab.inventory), "fleet.rollout.deploy"]
    command += ["-e", f"deploy_artifact={artifact}", "-e", "deploy_version=v2", *extra]
    command += ["-e", f"rollout_journal_dir={journal_dir}"]
    env = ansible_env(ANSIBLE_CALLBACKS_ENABLED=CALLBACK, FLEET_ROLLOUT_JOURNAL_WRITE_INTERVAL="0.05")
    return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)


def wait_for_journal(
    playbook: subprocess.Popen[str],
    journal_dir: Path,
    condition: Callable[[Path], bool],
    *,
    ended: str,
    never: str,
    deadline: float = 120,
) -> None:
    """Poll until the journals in ``journal_dir`` meet ``condition``; the playbook ending first fails with
    ``ended``, ``deadline`` seconds passing with ``never``."""
    end = time.monotonic() + deadline
    while not condition(journal_dir):
        assert playbook.poll() is None, ended
        assert time.monotonic() < end, never
        time.sleep(0.05)


@pytest.mark.lab(hosts=3)
def test_a_rollout_killed_with_sigkill_leaves_a_readable_journal(lab: Lab, tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    artifact = lab.build("v2", warmup=1.0)  # a longer cycle: more moments to be killed in
    playbook = start_journaled_deploy(lab, journal_dir, artifact, "-e", "rollout_window=2")
    try:
        wait_for_journal(
            playbook,
            journal_dir,
            _some_host_is_in_its_cycle,
            ended="the rollout ended before the kill",
            never="no host started its cycle",
        )
        time.sleep(random.uniform(0.0, 2.0))  # a random moment of the cycles
    finally:
        workers = descendants(playbook.pid)  # each in a session of its own (ansible-core's setsid)
        playbook.kill()
        playbook.wait(timeout=30)
        for pid in workers:  # nothing this test started outlives it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert playbook.returncode == -signal.SIGKILL
    journal = only_journal(journal_dir, killed=True)
    assert (journal["result"], journal["finished_at"]) == ("running", None)
    assert "summary" not in journal
    assert set(journal["hosts"]) == {"app01", "app02", "app03"}
    assert "stage" in step_names(journal["hosts"]["app01"])
    for host in journal["hosts"].values():
        assert host["outcome"] in {"waiting", "running"}, host
        assert_times_are_consistent(host)


def _some_host_is_in_its_cycle(journal_dir: Path) -> bool:
    for path in journals(journal_dir):
        with path.open() as stream:
            hosts = json.load(stream)["hosts"]  # every write is whole: this never sees half a file
        if any(step in CYCLE for host in hosts.values() for step in step_names(host)):
            return True
    return False


# ---- every ansible-core of the matrix, without the lab -----------------------------------------------
# A role laid out as fleet.rollout.deploy is: its task files are the phases, recover.yml is the rescue.
MINI_ROLE = {
    "main.yml": """
        - name: Check the input
          ansible.builtin.assert: {that: [true], quiet: true}
        - name: Stage
          ansible.builtin.import_tasks: stage.yml
        - name: Cycle
          block:
            - name: Drain
              ansible.builtin.import_tasks: drain.yml
            - name: Verify
              ansible.builtin.import_tasks: verify.yml
          rescue:
            - name: Recover
              ansible.builtin.import_tasks: recover.yml
        """,
    "stage.yml": """
        - name: Unpack
          ansible.builtin.debug: {msg: unpacked}
          changed_when: true
        - name: Never on this fleet
          ansible.builtin.command: 'false'
          when: false
        """,
    "drain.yml": """
        - name: Run the before_drain hook
          ansible.builtin.include_tasks: "{{ playbook_dir }}/hook.yml"
        - name: Drain
          ansible.builtin.debug: {msg: drained}
        """,
    "verify.yml": """
        - name: Health-check the release
          ansible.builtin.fail:
            msg: "{{ inventory_hostname }} answers 500"
          when: inventory_hostname == 'h2'
        """,
    "recover.yml": """
        - name: Switch back
          ansible.builtin.debug: {msg: back}
        - name: Fail with the evidence
          ansible.builtin.fail:
            msg: "{{ inventory_hostname }}: deploying failed"
        """,
}
MINI_PLAYBOOK = """
- name: Preflight
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Look around
      ansible.builtin.debug: {msg: ready}
- name: Roll
  hosts: fleet
  gather_facts: false
  strategy: "{{ rollout_strategy | default('fleet.rollout.rolling') }}"
  serial: "{{ (rollout_window | default(1)) if (rollout_strategy | default('')) == 'linear' else 0 }}"
  vars:
    rollout_window: 2
    rollout_canary: 2
  roles:
    - role: deploy
- name: Report
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Say it
      ansible.builtin.debug: {msg: done}
"""


def run_mini(core: Core, tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    """The mini playbook on h1..h3 (local connection); the callback is enabled in its ansible.cfg."""
    (tmp_path / "roles" / "deploy" / "tasks").mkdir(parents=True)
    for name, body in MINI_ROLE.items():
        (tmp_path / "roles" / "deploy" / "tasks" / name).write_text(_dedent(body))
    (tmp_path / "hook.yml").write_text("- name: Hook\n  ansible.builtin.debug: {msg: hook}\n")
    (tmp_path / "site.yml").write_text(MINI_PLAYBOOK)
    python = core.venv / "bin" / "python"
    hosts = {f"h{n}": {"ansible_connection": "local"} for n in range(1, 4)}
    inventory = {"fleet": {"hosts": hosts}, "all": {"vars": {"ansible_python_interpreter": str(python)}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    journal_dir = tmp_path / "journal"
    config = [
        f"[defaults]\ncallbacks_enabled = {CALLBACK}",
        f"[callback_rollout_journal]\njournal_dir = {journal_dir}",
    ]
    (tmp_path / "ansible.cfg").write_text("\n\n".join(config) + "\n")
    done = run_playbook(
        Path("site.yml"),
        tmp_path / "inventory.json",
        *args,
        timeout=180,
        ansible_playbook=core.ansible_playbook,
        cwd=tmp_path,
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
        ANSIBLE_DEPRECATION_WARNINGS="False",
        PATH=f"{core.venv / 'bin'}:{os.environ.get('PATH', '')}",
    )
    found = journals(journal_dir)
    assert len(found) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    return done.rc, done.stdout + done.stderr, json.loads(found[0].read_text())


def _dedent(body: str) -> str:
    lines = body.strip("\n").splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "---\n" + "\n".join(line[indent:] for line in lines) + "\n"


def assert_mini_journal(journal: dict[str, Any], strategy: str) -> None:
    """h1 and h2 ran side by side (the canary wave of two, or the first batch); h2 failed."""
    assert (journal["target"], journal["strategy"], journal["window"]) == ("fleet", strategy, 2)
    assert set(journal["hosts"]) == {"h1", "h2", "h3"}  # not the report play's localhost
    ok = journal["hosts"]["h1"]
    assert ok["outcome"] == "ok"
    # the skipped task of stage.yml adds nothing; the hook's task belongs to drain
    assert [(p["phase"], p["outcome"], p["tasks"]) for p in ok["phases"]] == [
        ("preflight", "ok", 1),
        ("check", "ok", 1),  # main.yml's assert
        ("stage", "changed", 1),
        ("drain", "ok", 3),  # the include, the hook's task, the drain
    ], ok["phases"]
    assert_times_are_consistent(ok)
    failed = journal["hosts"]["h2"]
    assert failed["outcome"] == "failed" and failed["msg"] == "h2: deploying failed"
    assert [(p["phase"], p["outcome"]) for p in failed["phases"]][-2:] == [
        ("verify", "failed"),
        ("recover", "failed"),
    ]
    assert failed["phases"][-2]["msg"] == "h2 answers 500"
    assert failed["phases"][-2]["failed_task"] == "deploy : Health-check the release"
    assert_times_are_consistent(failed)


@pytest.mark.parametrize("core", core_matrix())
def test_each_ansible_core_journals_the_phases_under_the_rolling_strategy(core: Core, tmp_path: Path) -> None:
    rc, output, journal = run_mini(core, tmp_path)
    assert rc == 2, output[-3000:]
    assert journal["ansible_core"] == core.version
    assert (journal["canary"], journal["result"]) == (2, "halted")
    assert_mini_journal(journal, "fleet.rollout.rolling")
    # the canary wave failed, so h3 never started
    summary = {"ok": ["h1"], "reverted": [], "failed": ["h2"], "unreachable": [], "untouched": ["h3"]}
    assert journal["summary"] == summary
    assert [p["phase"] for p in journal["hosts"]["h3"]["phases"]] == ["preflight"]


def test_linear_batches_are_journaled_too(tmp_path: Path) -> None:
    rc, output, journal = run_mini(Core(ROOT / ".venv", ""), tmp_path, "-e", "rollout_strategy=linear")
    assert rc == 2, output[-3000:]
    assert journal["result"] == "failed"
    assert_mini_journal(journal, "linear")
    # batches of two: h2 failed in the first, and the second (h3) went through
    assert [play["name"] for play in journal["plays"]] == ["Preflight", "Roll", "Roll", "Report"]
    summary = {"ok": ["h1", "h3"], "reverted": [], "failed": ["h2"], "unreachable": [], "untouched": []}
    assert journal["summary"] == summary


def test_a_terminated_run_is_journaled_as_interrupted(tmp_path: Path) -> None:
    """SIGTERM ends ansible-playbook without its recap (and without atexit): the journal says so."""
    (tmp_path / "site.yml").write_text(
        "- hosts: fleet\n  gather_facts: false\n  tasks:\n"
        "    - name: Take long\n      ansible.builtin.command: sleep 60\n"
    )
    python = VENV_BIN / "python"
    (tmp_path / "inventory.ini").write_text(
        f"[fleet]\nh1 ansible_connection=local ansible_python_interpreter={python}\n"
    )
    journal_dir = tmp_path / "journal"
    env = ansible_env(ANSIBLE_CALLBACKS_ENABLED=CALLBACK, FLEET_ROLLOUT_JOURNAL_DIR=str(journal_dir))
    command = [str(VENV_BIN / "ansible-playbook"), "-i", "inventory.ini", "site.yml"]
    playbook = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not any("running" in host for path in journals(journal_dir) for host in _hosts(path)):
            assert playbook.poll() is None and time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        playbook.terminate()
        assert playbook.wait(timeout=30) == -signal.SIGTERM
    finally:
        if playbook.poll() is None:
            os.killpg(playbook.pid, signal.SIGKILL)
            playbook.wait()
    (path,) = journals(journal_dir)
    assert path.name.endswith("-fleet.json")
    journal = json.loads(path.read_text())
    assert (journal["result"], journal["msg"]) == (
        "interrupted",
        "ansible-playbook was terminated (SIGTERM) before the play recap",
    )
    assert journal["finished_at"] is not None
    assert journal["hosts"]["h1"]["running"]["task"] == "Take long"  # where it was


def _hosts(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text())["hosts"].values())
