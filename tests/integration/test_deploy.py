"""The deploy playbook end to end on the lab, with traffic flowing through HAProxy the whole time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lab.fleet import Lab
from lab.haproxy import show_stat
from lab.traffic import Traffic, TrafficResult
from tests import support
from tests.support import PlaybookRun, app_pids, run_deploy

RATE = 100.0


def deploy(lab: Lab, version: str, *extra: str, **behaviour: object) -> PlaybookRun:
    return run_deploy(lab.inventory, version, lab.build(version, **behaviour), *extra)


def deploy_under_traffic(
    lab: Lab, version: str, *extra: str, **behaviour: object
) -> tuple[PlaybookRun, TrafficResult]:
    run, result = support.deploy_under_traffic(lab, version, *extra, rate=RATE, lead=0.5, **behaviour)
    assert result.sent > 0
    return run, result


def servers_status(lab: Lab) -> dict[str, str]:
    return {row["svname"]: row["status"] for row in show_stat(lab.balancers[0].socket)}


@pytest.mark.lab(hosts=10)
def test_ten_hosts_move_to_v2_under_load_without_a_failed_request(lab: Lab) -> None:
    run, result = deploy_under_traffic(lab, "v2")
    assert run.rc == 0, run.stdout[-4000:]
    assert result.failed == 0, result.failures()[:5]
    assert result.sent >= RATE * 5
    assert {h.current_release() for h in lab.hosts} == {"v2"}
    assert set(servers_status(lab).values()) == {"UP"}
    for host in lab.hosts:
        assert sorted(p.name for p in (host.root / "releases").iterdir() if not p.name.startswith(".")) == [
            "v1",
            "v2",
        ]
    assert {v for v in result.versions()} == {"v1", "v2"}
    # the last seconds of traffic were all answered by v2
    tail = [r for r in result.records if r.t > result.records[-1].t - 0.4]
    assert {r.version for r in tail} == {"v2"}

    again_started = time.monotonic()
    again = deploy(lab, "v2")
    again_took = time.monotonic() - again_started
    assert again.rc == 0, again.stdout[-3000:]
    assert all(again.recap(h.name)["changed"] == 0 for h in lab.hosts), again.stdout[-3000:]
    assert again_took < 300  # a sanity bound only: bench/ measures speed


@pytest.mark.lab(hosts=10)
@pytest.mark.parametrize(
    ("behaviour", "evidence"),
    [({"health_fail": True}, "status 500"), ({"crash": True}, "exited with code 3 at start")],
    ids=["health-fails", "crashes-at-start"],
)
def test_a_bad_release_stops_at_the_first_host_and_leaves_no_trace(
    lab: Lab, behaviour: dict[str, object], evidence: str
) -> None:
    before = app_pids(lab)
    # a short health deadline keeps the test quick; the role's default is 60 s
    run, result = deploy_under_traffic(
        lab, "v2", "-e", '{"deploy_health": {"deadline": 5}}', "-e", "rollout_window=3", **behaviour
    )
    assert run.rc != 0
    assert result.failed == 0, result.failures()[:5]
    assert "app01" in run.stdout and "deploying v2 failed at" in run.stdout, run.stdout[-4000:]
    assert evidence in run.stdout, run.stdout[-4000:]
    assert {h.name: h.current_release() for h in lab.hosts} == {h.name: "v1" for h in lab.hosts}
    assert set(servers_status(lab).values()) == {"UP"}
    assert {h.name: h.service.status()["running"] for h in lab.hosts} == {h.name: True for h in lab.hosts}
    for host in lab.hosts[1:]:  # staged ahead like every target, but never switched nor restarted
        assert host.service.pid() == before[host.name], f"{host.name} was restarted"
    assert set(result.versions()) == {"v1"}, "users saw the bad release"
    assert "ROLLOUT: 0 ok, 1 failed, 9 not started, of 10" in run.stdout, run.stdout[-3000:]


@pytest.mark.lab(hosts=4)
def test_linear_fallback_rolls_in_serial_batches(lab: Lab) -> None:
    run, result = deploy_under_traffic(lab, "v2", "-e", "rollout_strategy=linear", "-e", "rollout_window=2")
    assert run.rc == 0, run.stdout[-3000:]
    assert result.failed == 0, result.failures()[:5]
    assert {h.current_release() for h in lab.hosts} == {"v2"}
    assert "ROLLOUT:" not in run.stdout  # the rolling strategy did not run
    assert run.stdout.count("PLAY [Roll the release across the targets]") == 2  # two batches of two


def test_deploy_over_real_ssh(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab")
    lab.up(hosts=3, ssh=True)
    try:
        traffic = Traffic(lab.frontend_url, rate=RATE, seconds=600).start()
        try:
            run = deploy(lab, "v2", "-vvv")
        finally:
            result = traffic.stop()
        assert run.rc == 0, run.stdout[-4000:]
        assert result.failed == 0, result.failures()[:5]
        assert {h.current_release() for h in lab.hosts} == {"v2"}
        assert set(servers_status(lab).values()) == {"UP"}
        for host in lab.hosts:  # the release and the restart went over SSH to each host's own address
            assert "ESTABLISH SSH CONNECTION FOR USER: " in run.stdout
            assert f"{host.address}" in run.stdout and f"Port={lab.ssh_port}" in run.stdout
    finally:
        lab.down()


@pytest.mark.lab(hosts=3)
def test_preflight_fails_before_touching_any_host(lab: Lab, tmp_path: Path) -> None:
    balancers = [{"socket": str(lab.balancers[0].socket)}, {"socket": str(tmp_path / "missing.sock")}]
    unreachable = deploy(lab, "v2", "-e", json.dumps({"deploy_balancers": balancers}))
    assert unreachable.rc != 0
    assert "missing.sock" in unreachable.stdout, unreachable.stdout[-3000:]
    not_a_member = deploy(lab, "v2", "-l", "app01,app02,localhost", "-e", "deploy_lb_server=ghost")
    assert not_a_member.rc != 0
    assert "ghost is not a server of" in not_a_member.stdout, not_a_member.stdout[-3000:]
    for host in lab.hosts:
        assert host.current_release() == "v1"
        assert not (host.root / "releases" / "v2").exists()
        assert not (host.root / "artifacts").exists()


@pytest.mark.lab(hosts=3)
def test_a_limit_without_localhost_is_refused_and_one_with_it_gives_the_lock_back(lab: Lab) -> None:
    """The last play (on localhost) gives the lock back: a --limit that skips it would leave it held."""
    refused = deploy(lab, "v2", "-l", "app01")
    assert refused.rc != 0
    assert "--limit 'app01' leaves out localhost" in refused.stdout, refused.stdout[-3000:]
    assert "-l 'app01,localhost'" in refused.stdout
    assert {h.current_release() for h in lab.hosts} == {"v1"}
    locks = lab.state_dir / "locks"  # the lab inventory's deploy_lock_dir
    assert not list(locks.glob("*.lock"))

    for version in ("v2", "v3"):  # a second limited run finds the lock free
        run = deploy(lab, version, "-l", "app01,localhost")
        assert run.rc == 0, run.stdout[-3000:]
        assert [h.current_release() for h in lab.hosts] == [version, "v1", "v1"]
    assert not list(locks.glob("*.lock"))


@pytest.mark.lab(hosts=2)
def test_hooks_run_at_their_steps_in_order(lab: Lab, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    hooks = {}
    steps = ["before_drain", "after_drain", "before_switch", "after_switch", "before_enable", "after_enable"]
    for step in steps:
        hook = tmp_path / f"{step}.yml"
        hook.write_text(
            json.dumps(
                [
                    {
                        "name": f"Record {step}",
                        "ansible.builtin.lineinfile": {
                            "path": str(log),
                            "line": "{{ inventory_hostname }} " + step,
                            "create": True,
                            "mode": "0644",
                        },
                        "delegate_to": "localhost",
                    }
                ]
            )
        )
        hooks[step] = str(hook)
    run = deploy(lab, "v2", "-e", json.dumps({"deploy_hooks": hooks}))
    assert run.rc == 0, run.stdout[-3000:]
    assert log.read_text().splitlines() == [f"app0{i} {step}" for i in (1, 2) for step in steps]


@pytest.mark.lab(hosts=3)
def test_a_host_past_its_progress_deadline_is_recovered_and_fails_naming_it(lab: Lab) -> None:
    # v2 warms up for 60 s and the health check would wait that long; the deadline of 4 s per host ends it.
    started = time.monotonic()
    run, result = deploy_under_traffic(
        lab, "v2", "-e", '{"deploy_progress_deadline": 4, "deploy_health": {"deadline": 90}}', warmup=60.0
    )
    seconds = time.monotonic() - started
    assert run.rc != 0
    assert result.failed == 0, result.failures()[:5]
    assert "app01: deploying v2 failed at 'Health-check the release'" in run.stdout, run.stdout[-4000:]
    assert "deploy_progress_deadline: 4 s per host, passed" in run.stdout, run.stdout[-4000:]
    assert {h.name: h.current_release() for h in lab.hosts} == {h.name: "v1" for h in lab.hosts}
    assert set(servers_status(lab).values()) == {"UP"}
    assert seconds < 60  # the deadline, not the health check's own 90 s, ended the cycle
