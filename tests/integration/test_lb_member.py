"""fleet.rollout.lb_member against the lab's real HAProxy, through real ansible-playbook runs."""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lab.fleet import Lab
from lab.traffic import Traffic
from tests.fakes.lb_fake_runtime import FakeRuntimeApi
from tests.integration.lb_playbooks import Playbook, Watch, servers_state, stat, wait_for_status
from tests.support import ROOT, VENV_BIN, ansible_env, empty_config, run_playbook

MODULE = "fleet.rollout.lb_member"
READY_UP = ("2", "0", "100", "100")  # srv_op_state running, admin ready, weights 100/100 (the lab's)


@dataclass
class Answer:
    host: str
    status: int
    finished: float  # wall clock, comparable with the playbook's now().timestamp()


def slow_request(url: str, seconds: float, answers: list[Answer]) -> None:
    with urllib.request.urlopen(f"{url}slow?seconds={seconds}", timeout=seconds + 30) as response:
        response.read()
        answers.append(Answer(response.headers["X-Host"], response.status, time.time()))


@pytest.mark.lab(hosts=3)
def test_drain_returns_only_after_the_slow_request_in_flight_finished(lab: Lab, tmp_path: Path) -> None:
    lb = lab.balancers[0]
    answers: list[Answer] = []
    threads = []
    for _ in lab.hosts:  # round robin: one slow request on each server
        threads.append(threading.Thread(target=slow_request, args=(lb.frontend_url, 8, answers)))
        threads[-1].start()
        time.sleep(0.05)
    while stat(lab, "app01")["scur"] != "1":
        time.sleep(0.02)

    playbook = (
        Playbook(tmp_path, lab)
        .call("drain", MODULE, socket=[str(lb.socket)], server="app01", state="drained")
        .stamp("after")
    )
    with Watch(lab, lambda lab: servers_state(lab)["app01"][1] == "8") as drain_set:
        done, results = playbook.run()
    for thread in threads:
        thread.join()

    assert done.rc == 0, done.stdout
    [member] = results["drain"]["members"]
    assert member["sessions_at_start"] == 1
    [mine] = [a for a in answers if a.host == "app01"]
    assert mine.status == 200
    assert mine.finished <= float(results["after"]), "the module returned before the request ended"
    # Measured from outside: from HAProxy showing the drain to the end of the request, within a poll.
    assert drain_set.seen_at is not None
    assert member["drain_seconds"] == pytest.approx(mine.finished - drain_set.seen_at, abs=0.3)
    assert member["drain_seconds"] > 1
    assert (member["status_after"], member["admin_state_after"]) == ("DRAIN", "drain")


@pytest.mark.lab(hosts=4)
def test_capacity_floor_refuses_then_allows_with_one_of_four_killed(lab: Lab, tmp_path: Path) -> None:
    lb = lab.balancers[0]
    lab.host("app04").kill()
    wait_for_status(lab, "app04", "DOWN")
    drain = {"socket": [str(lb.socket)], "server": "app02", "state": "drained", "capacity_timeout": 1}

    done, results = Playbook(tmp_path, lab).call("refused", MODULE, min_healthy=3, **drain).run()

    assert done.recap("localhost")["ignored"] == 1
    message = results["refused"]["msg"]
    assert "3 of 4 servers UP (app01, app02, app03)" in message
    assert "app04 (DOWN)" in message
    assert "below min_healthy 3 (floor 3)" in message
    assert servers_state(lab)["app02"] == READY_UP  # not drained

    done, results = Playbook(tmp_path, lab).call("allowed", MODULE, min_healthy=2, **drain).run()

    assert done.rc == 0, done.stdout
    assert results["allowed"]["changed"] is True
    assert servers_state(lab)["app02"][1] == "8"  # forced drain


@pytest.mark.lab(hosts=3)
def test_enable_of_a_broken_server_fails_and_no_user_request_reaches_it(lab: Lab, tmp_path: Path) -> None:
    lb = lab.balancers[0]
    lab.runtime("lb1", "set server app/app01 state maint")
    lab.install("app01", "v2", health_fail=True, error_rate=1.0)  # /health and / both answer 500
    traffic = Traffic(lb.frontend_url, rate=50, seconds=5).start()

    done, results = (
        Playbook(tmp_path, lab)
        .call("enable", MODULE, socket=[str(lb.socket)], server="app01", state="enabled", up_timeout=3)
        .run()
    )
    seen = traffic.wait()

    assert done.recap("localhost")["ignored"] == 1
    message = results["enable"]["msg"]
    assert "did not come UP within up_timeout 3s" in message
    assert "check L7STS 500" in message
    assert seen.sent >= 240
    assert seen.failed == 0, seen.failures()[:5]
    assert "app01" not in seen.hosts()


@pytest.mark.lab(hosts=3)
def test_enable_returns_within_a_check_interval_of_up(lab: Lab, tmp_path: Path) -> None:
    lb = lab.balancers[0]
    lab.runtime("lb1", "set server app/app01 state maint")
    playbook = Playbook(tmp_path, lab).call(
        "enable", MODULE, socket=[str(lb.socket)], server="app01", state="enabled"
    )

    with (
        Watch(lab, lambda lab: servers_state(lab)["app01"][1] != "1") as left_maint,
        Watch(lab, lambda lab: stat(lab, "app01")["status"] == "UP") as became_up,
    ):
        done, results = playbook.run()

    assert done.rc == 0, done.stdout
    [member] = results["enable"]["members"]
    assert member["status_after"] == "UP"
    assert member["commands"] == [
        "set server app/app01 state drain",
        "set server app/app01 health down",
        "set server app/app01 state ready",
    ]
    # HAProxy's own view, observed every 10 ms: from the first command to UP (rise 2 checks at 200 ms).
    assert left_maint.seen_at is not None
    assert became_up.seen_at is not None
    observed = became_up.seen_at - left_maint.seen_at
    assert 0.1 < observed < 1.5
    # The module saw it UP within one poll (0.2 s) of HAProxy, and returned then.
    assert member["up_seconds"] == pytest.approx(observed + 0.1, abs=0.15)


@pytest.mark.lab(hosts=3, balancers=2)
def test_two_balancers_over_unix_and_tcp_sockets_are_drained_and_enabled(lab: Lab, tmp_path: Path) -> None:
    lb1, lb2 = lab.balancers
    both = {"socket": [str(lb1.socket), lb2.admin_url], "server": "app01"}

    for state, admin in (("drained", "8"), ("enabled", "0")):
        done, results = (
            Playbook(tmp_path, lab)
            .call("first", MODULE, state=state, **both)
            .call("again", MODULE, state=state, **both)
        ).run()

        assert done.rc == 0, done.stdout
        assert results["first"]["changed"] is True
        assert results["again"]["changed"] is False
        assert [m["balancer"] for m in results["first"]["members"]] == both["socket"]
        for name in ("lb1", "lb2"):
            assert servers_state(lab, name)["app01"][1] == admin
    for name in ("lb1", "lb2"):
        assert stat(lab, "app01", name)["status"] == "UP"


@pytest.mark.lab(hosts=3, balancers=2)
def test_run_once_per_balancer_from_the_inventory(lab: Lab, tmp_path: Path) -> None:
    task = {"socket": ["{{ haproxy_socket }}"], "server": "app02", "backends": ["{{ haproxy_backend }}"]}

    done, results = Playbook(tmp_path, lab, hosts="lb").call("out", MODULE, state="maintenance", **task).run()

    assert done.rc == 0, done.stdout
    assert {results["out@lb1"]["changed"], results["out@lb2"]["changed"]} == {True}
    assert {servers_state(lab, name)["app02"][1] for name in ("lb1", "lb2")} == {"1"}


@pytest.mark.lab(hosts=3)
def test_check_mode_changes_nothing_then_changed_then_not_changed(lab: Lab, tmp_path: Path) -> None:
    lb = lab.balancers[0]
    base = {"socket": [str(lb.socket)], "server": "app01"}
    playbook = (
        Playbook(tmp_path, lab)
        .call("drain", MODULE, state="drained", drain_to="maint", **base)
        .call("weight", MODULE, weight="0", **{**base, "server": "app02"})
        .call("maint", MODULE, state="maintenance", **{**base, "server": "app03"})
    )
    before = servers_state(lab)

    checked, results = playbook.run("--check", "--diff")

    assert checked.rc == 0, checked.stdout
    assert servers_state(lab) == before
    assert checked.recap("localhost")["changed"] == 3
    assert results["drain"]["members"][0]["admin_state_after"] == "maint"
    assert results["drain"]["diff"]["after"] == {
        f"{lb.socket} app/app01": {"admin_state": "maint", "weight": 100}
    }
    assert "set server app/app01 state maint" in results["drain"]["members"][0]["commands"]

    applied, _ = playbook.run()
    assert applied.recap("localhost")["changed"] == 3
    after = servers_state(lab)
    assert (after["app01"][1], after["app02"][2], after["app03"][1]) == ("1", "0", "1")

    for args in ((), ("--check",)):
        again, _ = playbook.run(*args)
        assert again.recap("localhost")["changed"] == 0, again.stdout
    assert servers_state(lab) == after


@pytest.mark.parametrize("server", ["app01;set server app/app02 state maint", "app01\nshow stat", "app 01"])
def test_a_bad_name_is_refused_before_anything_is_written_to_the_socket(tmp_path: Path, server: str) -> None:
    # A recording stand-in for HAProxy: proof that not one byte was sent (not even a connection made).
    with FakeRuntimeApi({"app": ["app01", "app02"]}) as fake:
        done, results = (
            Playbook(tmp_path)
            .call("bad", MODULE, socket=[fake.address], server=server, state="drained")
            .run()
        )
        assert fake.received == []
    assert done.recap("localhost")["ignored"] == 1
    assert repr(server) in results["bad"]["msg"]
    assert results["bad"]["invalid_name"] == server


@pytest.mark.lab(hosts=3)
def test_unknown_names_and_unreachable_sockets_fail_clearly_and_change_nothing(
    lab: Lab, tmp_path: Path
) -> None:
    lb = lab.balancers[0]
    before = servers_state(lab)
    done, results = (
        Playbook(tmp_path, lab)
        .call("server", MODULE, socket=[str(lb.socket)], server="app09", state="drained")
        .call("backend", MODULE, socket=[str(lb.socket)], server="app01", backends=["web"], state="drained")
        .call("path", MODULE, socket=[str(tmp_path / "no.sock")], server="app01", state="drained")
        .call(
            "semicolon", MODULE, socket=[str(lb.socket)], server="app01", backends=["app;x"], state="drained"
        )
        .run()
    )

    assert done.recap("localhost")["ignored"] == 4
    assert "server 'app09' is not in any backend" in results["server"]["msg"]
    assert "backend 'web' does not exist" in results["backend"]["msg"]
    assert f"cannot reach the HAProxy runtime API at {tmp_path / 'no.sock'}" in results["path"]["msg"]
    assert "backend name 'app;x' is refused" in results["semicolon"]["msg"]
    assert servers_state(lab) == before


def test_ansible_doc_renders(tmp_path: Path) -> None:
    for module in (MODULE, "fleet.rollout.lb_member_info"):
        shown = subprocess.run(
            [str(VENV_BIN / "ansible-doc"), "-t", "module", module],
            capture_output=True,
            text=True,
            env=ansible_env(ANSIBLE_CONFIG=str(empty_config(tmp_path))),
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert "EXAMPLES" in shown.stdout
        assert "[WARNING]" not in shown.stderr


@pytest.mark.lab(hosts=4, balancers=2)
def test_the_examples_run(lab: Lab, tmp_path: Path) -> None:
    lb1, lb2 = lab.balancers
    for module in ("lb_member", "lb_member_info"):
        source = (ROOT / "plugins" / "modules" / f"{module}.py").read_text()
        examples = source.split('EXAMPLES = r"""', 1)[1].split('"""', 1)[0]
        examples = examples.replace("/run/haproxy/admin.sock", str(lb1.socket))
        examples = examples.replace("tcp://127.0.0.1:9999", lb2.admin_url)
        play = [
            {"name": module, "hosts": "localhost", "gather_facts": False, "tasks": yaml.safe_load(examples)}
        ]
        path = tmp_path / f"{module}.yml"
        path.write_text(yaml.safe_dump(play, sort_keys=False))
        done = run_playbook(path, lab.inventory, ANSIBLE_CONFIG=str(empty_config(tmp_path)))
        assert done.rc == 0, done.stdout + done.stderr
