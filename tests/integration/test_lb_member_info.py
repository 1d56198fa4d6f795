"""fleet.rollout.lb_member_info against the lab's real HAProxy, through real ansible-playbook runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.fleet import Lab
from lab.traffic import Traffic
from tests.integration.lb_playbooks import Playbook, wait_for_status

MODULE = "fleet.rollout.lb_member_info"


@pytest.mark.lab(hosts=3, balancers=2)
def test_every_server_of_every_balancer_is_reported(lab: Lab, tmp_path: Path) -> None:
    lb1, lb2 = lab.balancers
    sockets = [str(lb1.socket), lb2.admin_url]

    done, results = Playbook(tmp_path, lab).call("all", MODULE, socket=sockets).run("--check")

    assert done.rc == 0, done.stdout
    assert results["all"]["changed"] is False
    servers = results["all"]["servers"]
    assert [(s["balancer"], s["server"]) for s in servers] == [
        (sock, f"app0{i}") for sock in sockets for i in (1, 2, 3)
    ]
    for server in servers:
        assert (server["backend"], server["status"], server["admin_state"]) == ("app", "UP", "ready")
        assert (server["weight"], server["scur"], server["qcur"], server["hrsp_5xx"]) == (100, 0, 0, 0)
        assert (server["check_status"], server["check_enabled"]) == ("L7OK", True)
        # HAProxy resets the code when a check starts (every 200 ms here): no code while one runs
        if server["check_in_progress"]:
            assert server["check_code"] == ""
        else:
            assert server["check_code"] == "200"
        assert isinstance(server["check_duration_ms"], int)


@pytest.mark.lab(hosts=3)
def test_down_maintenance_and_5xx_are_reported(lab: Lab, tmp_path: Path) -> None:
    lb = lab.balancers[0]
    lab.install("app01", "v2", error_rate=1.0)
    wait_for_status(lab, "app01", "UP")
    Traffic(lb.frontend_url, rate=30, seconds=1).run()
    lab.host("app03").kill()
    wait_for_status(lab, "app03", "DOWN")
    lab.runtime("lb1", "set server app/app02 state maint")

    done, results = Playbook(tmp_path, lab).call("info", MODULE, socket=[str(lb.socket)]).run()

    assert done.rc == 0, done.stdout
    by_name = {s["server"]: s for s in results["info"]["servers"]}
    assert by_name["app01"]["hrsp_5xx"] >= 5
    assert (by_name["app02"]["status"], by_name["app02"]["admin_state"]) == ("MAINT", "maint")
    assert (by_name["app03"]["status"], by_name["app03"]["check_status"]) == ("DOWN", "L4CON")


@pytest.mark.lab(hosts=3)
def test_filters_and_unknown_names(lab: Lab, tmp_path: Path) -> None:
    sock = [str(lab.balancers[0].socket)]

    done, results = (
        Playbook(tmp_path, lab)
        .call("one", MODULE, socket=sock, backends=["app"], servers=["app02"])
        .call("unknown_server", MODULE, socket=sock, servers=["app09"])
        .call("unknown_backend", MODULE, socket=sock, backends=["web"])
        .call("bad_name", MODULE, socket=sock, servers=["app01;x"])
        .run()
    )

    assert done.recap("localhost")["ignored"] == 3
    assert [s["server"] for s in results["one"]["servers"]] == ["app02"]
    assert "no server 'app09' in any backend" in results["unknown_server"]["msg"]
    assert "no backend 'web'" in results["unknown_backend"]["msg"]
    assert "server name 'app01;x' is refused" in results["bad_name"]["msg"]
