"""The lab's pure parts: release artifacts, port blocks, traffic accounting, samplers, state files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from lab import haproxy, ports, prometheus
from lab.haproxy import BalancerSpec
from lab.ports import BLOCK_SIZE, MAX_BALANCERS, PortBlock, host_address
from lab.release import ReleaseBehaviour, build_release
from lab.sampling import Sampler
from lab.traffic import Record, Traffic, TrafficResult


def test_release_artifact_is_reproducible_and_carries_its_behaviour(tmp_path: Path) -> None:
    behaviour = ReleaseBehaviour(health_fail=True, fail_hosts=("app05",))
    first = build_release("v2", tmp_path / "a", behaviour)
    second = build_release("v2", tmp_path / "b", behaviour)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    with tarfile.open(first) as tar:
        assert sorted(tar.getnames()) == ["app.py", "release.json"]
        manifest = json.loads(tar.extractfile("release.json").read())  # type: ignore[union-attr]
    assert manifest["version"] == "v2"
    assert manifest["health_fail"] is True
    assert manifest["fail_hosts"] == ["app05"]


@pytest.mark.parametrize("version", ["", "a/b", "v 2", "v2;rm", "..", "v\n2"])
def test_release_refuses_bad_versions(tmp_path: Path, version: str) -> None:
    with pytest.raises(ValueError, match="invalid release version"):
        build_release(version, tmp_path)
    assert not list(tmp_path.iterdir())


def test_release_refuses_bad_behaviour(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="error_rate"):
        build_release("v2", tmp_path, ReleaseBehaviour(error_rate=1.5))


def test_port_block_layout_stays_inside_its_block() -> None:
    block = PortBlock(21000)
    used = [block.frontend(i) for i in range(MAX_BALANCERS)] + [block.admin(i) for i in range(MAX_BALANCERS)]
    used += [block.app, block.ssh, block.nginx, block.prometheus]
    used += [block.metrics(i) for i in range(MAX_BALANCERS)]
    assert len(set(used)) == len(used)
    assert all(p in block.all_ports() for p in used)
    assert len(block.all_ports()) == BLOCK_SIZE
    assert host_address(1) == "127.0.1.1"
    with pytest.raises(ValueError):
        host_address(0)


def test_steady_servers_are_checked_at_the_interval_asked_and_servers_on_their_way_up_every_100_ms(
    tmp_path: Path,
) -> None:
    servers = [("app01", "127.0.1.1", 21008)]
    spec = BalancerSpec("lb1", 21002, 21003, tmp_path / "lb1.sock", tmp_path)
    default = haproxy.render_config(spec, servers)
    spaced = haproxy.render_config(dataclasses.replace(spec, check_inter_ms=1000), servers)
    assert "check inter 200ms fastinter 100ms downinter 200ms rise 2 fall 2" in default
    assert "check inter 1000ms fastinter 100ms downinter 200ms rise 2 fall 2" in spaced


def test_every_balancer_exports_its_metrics_and_prometheus_scrapes_each_every_second(tmp_path: Path) -> None:
    spec = BalancerSpec("lb2", 21002, 21003, tmp_path / "lb2.sock", tmp_path, metrics_port=21012)
    config = haproxy.render_config(spec, [("app01", "127.0.1.1", 21008)])
    exporter = config[config.index("frontend prometheus") :].splitlines()
    assert exporter == [
        "frontend prometheus",
        "    bind 127.0.0.1:21012",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    no log",
    ]
    assert spec.metrics_url == "http://127.0.0.1:21012/metrics"
    scrape = yaml.safe_load(prometheus.render_config({"lb1": "127.0.0.1:21011", "lb2": "127.0.0.1:21012"}))
    assert scrape["global"]["scrape_interval"] == "1s"
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:21011"], "labels": {"balancer": "lb1"}},
        {"targets": ["127.0.0.1:21012"], "labels": {"balancer": "lb2"}},
    ]
    listen = prometheus.command(prometheus.PrometheusSpec(21015, tmp_path / "prometheus"))
    assert "--web.listen-address=127.0.0.1:21015" in listen
    assert f"--storage.tsdb.path={tmp_path}/prometheus/data" in listen


def test_traffic_result_accounting() -> None:
    result = TrafficResult(
        records=[
            Record(0.1, 200, None, "v1", "app01", 0.002),
            Record(0.6, 200, None, "v2", "app02", 0.004),
            Record(1.2, 500, None, "v2", "app02", 0.003),
            Record(1.5, None, "ConnectionRefusedError: x", None, None, 0.001),
        ],
        seconds=2.0,
    )
    assert result.sent == 4
    assert result.failed == 2
    assert result.hosts() == {"app01": 1, "app02": 1}
    assert result.versions() == {"v1": 1, "v2": 1}
    assert result.versions_over_time() == [{"t": 0.0, "v1": 1, "v2": 1}, {"t": 1.0, "failed": 2}]
    assert result.summary()["latency"]["max_ms"] == 4.0


@pytest.mark.parametrize(
    ("url", "rate", "seconds"),
    [
        ("http://10.0.0.1/", 10, 1),
        ("https://127.0.0.1/", 10, 1),
        ("http://127.0.0.1/", 0, 1),
        ("http://127.0.0.1/", 10, 0),
    ],
)
def test_traffic_refuses_bad_targets_and_unbounded_runs(url: str, rate: float, seconds: float) -> None:
    with pytest.raises(ValueError):
        Traffic(url, rate=rate, seconds=seconds).start()


def test_two_claims_in_a_row_get_different_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "RUN_ROOT", tmp_path / "run")
    first = ports.claim_block(tmp_path / "one", hosts=1)
    second = ports.claim_block(tmp_path / "two", hosts=1)
    try:
        assert first.base != second.base
    finally:
        ports.release_block(first)
        ports.release_block(second)


class CountingSampler(Sampler):
    """Counts its samples; stops itself at ``last``."""

    def __init__(self, last: int) -> None:
        super().__init__(0.01)
        self.last = last
        self.count = 0

    def sample(self) -> None:
        self.count += 1
        if self.count == self.last:
            self.stop()


def test_a_sampler_samples_while_its_block_runs_and_may_stop_itself() -> None:
    with CountingSampler(last=1000) as running:
        time.sleep(0.2)
    counted = running.count
    time.sleep(0.05)
    assert 5 <= counted <= 25, counted  # every 10 ms for 0.2 s, on a busy machine too
    assert running.count == counted  # nothing after the block

    with CountingSampler(last=3) as stopping:
        time.sleep(0.2)
    assert stopping.count == 3


def test_the_files_of_a_state_directory_are_below_it(tmp_path: Path) -> None:
    spec = BalancerSpec("lb1", 1, 2, tmp_path / "lb1.sock", tmp_path / "lb1")
    assert (spec.config, spec.server_state_file, spec.log) == (
        tmp_path / "lb1" / "haproxy.cfg",
        tmp_path / "lb1" / "server-state",
        tmp_path / "lb1" / "haproxy.log",
    )
