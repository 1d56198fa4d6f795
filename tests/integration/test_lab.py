"""The lab itself: a real fleet that comes up, serves, stops gracefully and leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from lab import ports
from lab.fleet import Lab, pids_naming
from lab.haproxy import show_stat
from lab.traffic import Traffic
from tests.support import ROOT, VENV_BIN, ansible_env


def lab_cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "python"), "-m", "lab", "--dir", str(state_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for_status(lab: Lab, server: str, wanted: str, deadline: float = 10) -> str:
    end = time.monotonic() + deadline
    status = ""
    while time.monotonic() < end:
        status = next(r["status"] for r in show_stat(lab.balancers[0].socket) if r["svname"] == server)
        if status == wanted:
            return status
        time.sleep(0.05)
    raise AssertionError(f"{server} stayed {status}, wanted {wanted}")


def test_ten_hosts_serve_steady_traffic_and_down_leaves_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "lab"
    up = lab_cli(state_dir, "up", "--hosts", "10")
    assert up.returncode == 0, up.stderr
    inventory = Path(up.stdout.strip().splitlines()[-1])
    assert inventory.is_file()
    lab = Lab(state_dir)
    pids = lab.state()["pids"]
    block = ports.PortBlock(lab.state()["base_port"])
    try:
        out = tmp_path / "traffic.jsonl"
        traffic = lab_cli(
            state_dir, "traffic", "--rate", "100", "--seconds", "10", "--out", str(out), "--json"
        )
        assert traffic.returncode == 0, traffic.stdout + traffic.stderr
        summary = json.loads(traffic.stdout)
        assert summary["failed"] == 0
        assert summary["sent"] >= 990
        assert sorted(summary["hosts"]) == [f"app{i:02d}" for i in range(1, 11)]
        lines = out.read_text().splitlines()
        assert len(lines) == summary["sent"] + 1  # every request, then the summary
        status = lab_cli(state_dir, "status", "--json")
        hosts = json.loads(status.stdout)["hosts"]
        assert {(h["current"], h["running"], h["balancers"]["lb1"]["status"]) for h in hosts} == {
            ("v1", "v1", "UP")
        }
    finally:
        down = lab_cli(state_dir, "down")
    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids if ports.pid_alive(pid)]
    assert pids_naming([f"{state_dir.resolve()}/"]) == []
    assert not block.run_dir.exists()
    assert all(ports.port_is_free("127.0.0.1", p) for p in block.all_ports())
    assert ports.port_is_free("127.0.1.1", block.app)
    assert not (state_dir / "lab.json").exists()


def test_a_lab_with_prometheus_scrapes_every_balancer_and_down_stops_it(tmp_path: Path) -> None:
    state_dir = tmp_path / "lab"
    up = lab_cli(state_dir, "up", "--hosts", "2", "--balancers", "2", "--prometheus")
    assert up.returncode == 0, up.stderr
    lab = Lab(state_dir)
    url = lab.prometheus_url
    assert url is not None and url.startswith("http://127.0.0.1:")
    assert f"Prometheus at {url}" in up.stdout
    pid = lab.state()["prometheus"]["pid"]
    block = ports.PortBlock(lab.state()["base_port"])
    try:
        inventory = yaml.safe_load(lab.inventory.read_text())
        assert inventory["all"]["vars"]["prometheus_url"] == url
        lb_vars = inventory["all"]["children"]["lb"]["hosts"]
        assert [lb_vars[b.name]["haproxy_metrics_url"] for b in lab.balancers] == [
            f"http://127.0.0.1:{block.metrics(i)}/metrics" for i in range(2)
        ]
        status = lab_cli(state_dir, "status")
        assert f"prometheus {url}" in status.stdout.splitlines(), status.stdout
        # HAProxy 2.6's exporter: per-server response counters by status class
        code, metrics = http_get(lab.balancers[1].metrics_url or "")
        assert code == 200
        assert 'haproxy_server_http_responses_total{proxy="app",server="app02",code="5xx"} 0' in metrics
        # Prometheus listens on loopback only and has scraped both balancers by the time `up` returns
        code, body = http_get(f"{url}/api/v1/query?query=up")
        assert code == 200
        scraped = {s["metric"]["balancer"]: s["value"][1] for s in json.loads(body)["data"]["result"]}
        assert scraped == {"lb1": "1", "lb2": "1"}
        assert ports.port_is_free("127.0.1.1", block.prometheus)  # not on every address
    finally:
        down = lab_cli(state_dir, "down")
    assert down.returncode == 0, down.stderr
    assert f"pid {pid}" in down.stdout
    assert not ports.pid_alive(pid)
    assert pids_naming([f"{state_dir.resolve()}/"]) == []
    assert all(ports.port_is_free("127.0.0.1", p) for p in block.all_ports())


@pytest.mark.lab(hosts=4)
def test_traffic_reaches_every_host(lab: Lab) -> None:
    result = Traffic(lab.frontend_url, rate=80, seconds=1.5).run()
    assert result.failed == 0
    assert set(result.hosts()) == {h.name for h in lab.hosts}
    assert set(result.versions()) == {"v1"}


@pytest.mark.lab(hosts=1)
def test_sigterm_lets_a_slow_request_in_flight_finish(lab: Lab) -> None:
    host = lab.hosts[0]
    answers: list[tuple[int, str]] = []
    slow = threading.Thread(target=lambda: answers.append(http_get(f"{host.url}slow?seconds=2")))
    slow.start()
    time.sleep(0.3)  # let the request reach the app before it is told to stop
    started = time.monotonic()
    assert "stopped" in host.stop()
    stop_took = time.monotonic() - started
    slow.join()
    assert answers == [(200, f"v1 {host.name}\n")]
    assert stop_took >= 1.0, "stop returned before the request in flight finished"
    assert host.service.pid() is None
    with pytest.raises(OSError):
        urllib.request.urlopen(host.url, timeout=2)


@pytest.mark.lab(hosts=2)
def test_release_with_failing_health_really_fails_its_check(lab: Lab) -> None:
    lab.install("app02", "v2", health_fail=True)
    status, body = http_get(lab.host("app02").health_url)
    assert status == 500
    assert json.loads(body)["status"] == "failing"
    assert http_get(lab.host("app02").url)[0] == 200  # it serves, but its health says no
    wait_for_status(lab, "app02", "DOWN")
    result = Traffic(lab.frontend_url, rate=50, seconds=1).run()
    assert result.failed == 0
    assert set(result.hosts()) == {"app01"}


@pytest.mark.lab(hosts=1)
def test_release_behaviours_warmup_errors_and_crash(lab: Lab) -> None:
    host = lab.hosts[0]
    lab.install(host.name, "v2", warmup=1.0, error_rate=0.5)
    assert http_get(host.health_url)[0] == 503
    assert [http_get(host.url)[0] for _ in range(4)] == [200, 500, 200, 500]
    lab.install(host.name, "v3", crash=True)
    assert host.service.pid() is None
    assert host.current_release() == "v3"
    appctl = subprocess.run([str(host.appctl), "start"], capture_output=True, text=True, check=False)
    assert appctl.returncode == 1
    assert "exited with code 3 at start" in appctl.stderr


def test_two_labs_do_not_collide_and_a_left_behind_lab_is_replaced(tmp_path: Path) -> None:
    first, second = Lab(tmp_path / "one"), Lab(tmp_path / "two")
    first.up(hosts=1)
    try:
        second.up(hosts=1)
        try:
            assert first.frontend_url != second.frontend_url
            assert http_get(first.frontend_url)[0] == http_get(second.frontend_url)[0] == 200
            # A lab whose processes died without `down` (a killed test): the next `up` there takes over.
            for pid in second.state()["pids"]:
                subprocess.run(["kill", "-9", str(pid)], check=True)
            second.up(hosts=2)
            assert http_get(second.frontend_url)[0] == 200
            assert len(second.hosts) == 2
        finally:
            second.down()
    finally:
        first.down()


def test_ssh_lab_reaches_every_host_over_real_ssh(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab")
    lab.up(hosts=2, ssh=True)
    try:
        run = subprocess.run(
            [
                str(VENV_BIN / "ansible"),
                "-i",
                str(lab.inventory),
                "app",
                "-m",
                "ansible.builtin.ping",
                "-vvv",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=ansible_env(),
            check=False,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert run.stdout.count("ESTABLISH SSH CONNECTION") >= 2
        assert f"-o Port={lab.ssh_port}" in run.stdout or f"-p {lab.ssh_port}" in run.stdout
    finally:
        lab.down()
    assert pids_naming([f"{(tmp_path / 'lab').resolve()}/"]) == []


def test_collection_builds_without_the_lab_and_installs(tmp_path: Path) -> None:
    built = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        env=ansible_env(),
    )
    assert built.returncode == 0, built.stderr
    (tarball,) = tmp_path.glob("fleet-rollout-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names  # replaced by MANIFEST.json in a build
    assert {"MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml"} <= set(names)
    for left_out in ("lab", "bench", ".venv", ".tmp", "tests/integration", "Makefile", "tools"):
        assert not [n for n in names if n == left_out or n.startswith(f"{left_out}/")], left_out
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    installed = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "install", "-p", str(tmp_path / "c"), str(tarball)],
        capture_output=True,
        text=True,
        check=False,
        env=ansible_env(ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "c")),
    )
    assert installed.returncode == 0, installed.stderr
    assert (tmp_path / "c" / "ansible_collections" / "fleet" / "rollout" / "MANIFEST.json").is_file()
