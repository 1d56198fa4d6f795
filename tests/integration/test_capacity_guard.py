"""The capacity floor holds when several hosts are drained at once, on the lab's real HAProxy."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._balancer import BalancerMember
from ansible_collections.fleet.rollout.plugins.module_utils._errors import CapacityError
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import RuntimeApiClient
from ansible_collections.fleet.rollout.plugins.module_utils._member import MemberRequest

from lab.fleet import Lab
from lab.haproxy import show_stat
from lab.sampling import Sampler
from tests.support import run_playbook


def drain(
    lab: Lab, server: str, outcomes: dict[str, str], start: threading.Barrier, socket: str | None = None
) -> None:
    request = MemberRequest(server=server, state="drained", min_healthy=3, capacity_timeout=0.5)
    member = BalancerMember([RuntimeApiClient(socket or str(lab.balancers[0].socket))], request)
    start.wait()
    try:
        member.apply()
        outcomes[server] = "drained"
    except CapacityError:
        outcomes[server] = "refused"


@pytest.mark.lab(hosts=4)
def test_two_drains_at_once_never_go_below_the_floor(lab: Lab) -> None:
    for _trial in range(5):
        outcomes: dict[str, str] = {}
        start = threading.Barrier(2)
        threads = [threading.Thread(target=drain, args=(lab, s, outcomes, start)) for s in ("app01", "app02")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes.values()) == ["drained", "refused"], outcomes
        for server in ("app01", "app02"):
            lab.runtime("lb1", f"set server app/{server} state ready")
        lab.wait_all_up()


@pytest.mark.lab(hosts=4)
def test_the_floor_holds_between_the_unix_and_the_tcp_socket_of_one_haproxy(lab: Lab) -> None:
    """One HAProxy, two ways to its runtime API (two controllers' settings): one capacity lock."""
    sockets = {"app01": str(lab.balancers[0].socket), "app02": lab.balancers[0].admin_url}
    for _trial in range(5):
        outcomes: dict[str, str] = {}
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=drain, args=(lab, server, outcomes, start, socket))
            for server, socket in sockets.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes.values()) == ["drained", "refused"], outcomes
        for server in sockets:
            lab.runtime("lb1", f"set server app/{server} state ready")
        lab.wait_all_up()


class UpSampler(Sampler):
    """Counts the servers HAProxy reports UP (a drained one is DRAIN), every ``interval`` s, in a thread."""

    def __init__(self, lab: Lab, interval: float = 0.2) -> None:
        super().__init__(interval)
        self.lab = lab
        self.samples: list[int] = []

    def sample(self) -> None:
        rows = show_stat(self.lab.balancers[0].socket)
        self.samples.append(sum(1 for row in rows if row["status"] == "UP"))


@pytest.mark.lab(hosts=10)
def test_window_never_takes_the_pool_below_the_floor(lab: Lab) -> None:
    for server in ("app09", "app10"):  # already out before the run, and left out of it
        lab.runtime("lb1", f"set server app/{server} state maint")
    artifact = lab.build("v2")
    with UpSampler(lab) as sampler:
        run = run_playbook(
            Path("fleet.rollout.deploy"),
            lab.inventory,
            "--limit",
            "app01:app02:app03:app04:app05:app06:app07:app08:localhost",  # localhost gives the lock back
            "-e",
            "deploy_version=v2",
            "-e",
            f"deploy_artifact={artifact}",
            "-e",
            "deploy_min_healthy=6",
            "-e",
            "rollout_window=4",
            "-e",
            "rollout_canary=0",
            "-f",
            "10",
        )
        time.sleep(0.3)
    assert run.rc == 0, run.stdout[-3000:]
    assert len(sampler.samples) > 10
    assert min(sampler.samples) >= 6, sampler.samples
    assert min(sampler.samples) == 6, "the window was never limited by the floor"
    assert {h.name: h.current_release() for h in lab.hosts[:8]} == {h.name: "v2" for h in lab.hosts[:8]}
    assert {h.current_release() for h in lab.hosts[8:]} == {"v1"}
