"""An HAProxy reload during a drain, on the lab's real HAProxy (master-worker, SIGUSR2): the drain lost
with the runtime state is sent again, and the drain ends only once the previous process has finished the
sessions that the new one cannot count."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from lab.fleet import Lab
from tests.integration.lb_playbooks import Playbook, Watch, servers_state, stat
from tests.integration.test_lb_member import Answer, slow_request
from tests.support import deploy_under_traffic, fleet_state

MODULE = "fleet.rollout.lb_member"


def drain_across_a_reload(lab: Lab, tmp_path: Path, keep_state: bool) -> tuple[dict, Answer, float]:
    """app01 drains while a slow request is on it; the balancer is reloaded once HAProxy shows the drain.
    The drain's result, the slow request's answer, and when the playbook returned (wall clock)."""
    lb = lab.balancers[0]
    answers: list[Answer] = []
    threads = [threading.Thread(target=slow_request, args=(lb.frontend_url, 6, answers)) for _ in lab.hosts]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    while stat(lab, "app01")["scur"] != "1":
        time.sleep(0.02)

    def reload_once_drained(lab: Lab) -> bool:
        drained = servers_state(lab)["app01"][1] == "8"
        if drained:
            lab.reload_balancer("lb1", keep_state=keep_state)
        return drained

    playbook = (
        Playbook(tmp_path, lab)
        .call("drain", MODULE, socket=[str(lb.socket)], server="app01", state="drained", drain_timeout=20)
        .stamp("after")
    )
    with Watch(lab, reload_once_drained):
        done, results = playbook.run()
    for thread in threads:
        thread.join()
    assert done.rc == 0, done.stdout[-3000:]
    [mine] = [a for a in answers if a.host == "app01"]
    return results["drain"], mine, float(results["after"])


@pytest.mark.lab(hosts=3)
def test_a_lossy_reload_during_a_drain_is_drained_again_and_waited_out(lab: Lab, tmp_path: Path) -> None:
    drain, slow, returned = drain_across_a_reload(lab, tmp_path, keep_state=False)

    [member] = drain["members"]
    assert member["drain_reasserted"] >= 1, drain
    assert (member["status_after"], member["admin_state_after"]) == ("DRAIN", "drain"), drain
    assert servers_state(lab)["app01"][1] == "8"  # drained in the new process
    assert slow.status == 200
    assert slow.finished <= returned, "the drain ended while the previous process still served app01"
    warnings = " ".join(drain["warnings"])
    assert "found back in rotation" in warnings and "previous process" in warnings, warnings


@pytest.mark.lab(hosts=3)
def test_a_reload_that_keeps_the_state_still_waits_for_the_previous_process(lab: Lab, tmp_path: Path) -> None:
    drain, slow, returned = drain_across_a_reload(lab, tmp_path, keep_state=True)

    [member] = drain["members"]
    assert member["drain_reasserted"] == 0, drain  # the state file kept the drain
    assert slow.status == 200
    assert slow.finished <= returned, "the drain ended while the previous process still served app01"
    assert "previous process" in " ".join(drain["warnings"]), drain


@pytest.mark.lab(hosts=3)
def test_with_its_state_file_kept_current_a_lossy_reload_keeps_the_drain(lab: Lab, tmp_path: Path) -> None:
    lb = lab.balancers[0]
    state_file = str(lb.spec.server_state_file)
    done, results = (
        Playbook(tmp_path, lab)
        .call(
            "drain",
            MODULE,
            socket=[str(lb.socket)],
            server="app01",
            state="drained",
            server_state_files={str(lb.socket): state_file},
        )
        .run()
    )
    assert done.rc == 0 and results["drain"]["changed"], done.stdout[-3000:]

    lab.reload_balancer("lb1", keep_state=False)  # no save before it: the module's file is what loads

    assert servers_state(lab)["app01"][1] == "8", "the drain did not survive the reload"


class ReloadWhileTwoAreDrained(threading.Thread):
    """Watches the balancer every 5 ms; once two servers are drained at once, reloads it without saving
    the state (once), then notes when each of those two is out of rotation again in the new process."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.reloaded_at: float | None = None
        self.drained: list[str] = []
        self.out_again: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                admin = {name: row[1] for name, row in servers_state(self.lab).items()}
            except (OSError, IndexError):
                continue  # between two processes
            if self.reloaded_at is None:
                drained = sorted(name for name, state in admin.items() if state != "0")
                if len(drained) >= 2:
                    self.drained = drained
                    self.lab.reload_balancer("lb1", keep_state=False)
                    self.reloaded_at = time.monotonic()
            else:
                for name in self.drained:
                    if admin.get(name, "0") != "0" and name not in self.out_again:
                        self.out_again[name] = time.monotonic() - self.reloaded_at
            time.sleep(0.005)


@pytest.mark.lab(hosts=6)
def test_a_lossy_reload_with_two_hosts_drained_puts_neither_back_for_long(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "fleet.rollout.rollout_journal")
    watcher = ReloadWhileTwoAreDrained(lab)
    watcher.start()
    try:
        run, seen = deploy_under_traffic(
            lab,
            "v2",
            "-e",
            "rollout_window=3",
            "-e",
            "rollout_canary_bake=0",
            "-e",
            f"rollout_journal_dir={tmp_path}",
            rate=100,
            warmup=1.5,
        )
    finally:
        watcher.done.set()
        watcher.join()

    assert run.rc == 0, run.stdout[-3000:]
    assert watcher.reloaded_at is not None, "no moment with two hosts drained"
    # out of rotation again at once in the new process (or kept by a host's own re-drain), each within 0.3 s
    assert set(watcher.out_again) == set(watcher.drained), (watcher.drained, watcher.out_again)
    assert max(watcher.out_again.values()) <= 0.3, watcher.out_again
    assert seen.failed <= 5, seen.failures()[:10]
    assert fleet_state(lab) == {h.name: ("v2", "UP") for h in lab.hosts}
    [journal] = [json.loads(path.read_text()) for path in tmp_path.glob("*.json")]
    redrained = {name for name, host in journal["hosts"].items() if host.get("redrains")}
    # (a host whose drain was sent just before the reload, after the watcher's look, is drained again too)
    assert set(watcher.drained) <= redrained, {
        name: h.get("redrains") for name, h in journal["hosts"].items()
    }
    print(f"reload with {watcher.drained} drained: out again after {watcher.out_again}, {seen.failed} failed")
