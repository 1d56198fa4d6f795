"""The lab's pure parts: release artifacts, port blocks, traffic accounting."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from lab import ports
from lab.ports import BLOCK_SIZE, MAX_BALANCERS, PortBlock, host_address
from lab.release import ReleaseBehaviour, build_release
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
    used += [block.app, block.ssh, block.nginx]
    assert len(set(used)) == len(used)
    assert all(p in block.all_ports() for p in used)
    assert len(block.all_ports()) == BLOCK_SIZE
    assert host_address(1) == "127.0.1.1"
    with pytest.raises(ValueError):
        host_address(0)


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
