"""Two controllers roll the same fleet at once (issue 14): each with its own rollout lock directory, one
reaching HAProxy on its unix socket and the other on its TCP socket, as two machines' settings would.
The hosts' leases keep them from cycling one host at once, and the balancer-keyed capacity lock keeps
the pool at its floor between them."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lab.fleet import Lab
from lab.traffic import Traffic
from tests.integration.test_capacity_guard import UpSampler
from tests.integration.test_rollout_journal import CALLBACK, journals, when
from tests.support import PlaybookRun, fleet_state, run_deploy


def controller(lab: Lab, artifact: Path, name: str, tmp_path: Path, *extra: str) -> PlaybookRun:
    return run_deploy(
        lab.inventory,
        "v2",
        artifact,
        "-e",
        f"deploy_lock_dir={tmp_path / name / 'locks'}",
        "-e",
        f"rollout_journal_dir={tmp_path / name / 'journal'}",
        "-e",
        "deploy_min_healthy=4",
        "-e",
        "rollout_window=2",
        "-f",
        "10",
        *extra,
        timeout=300,
        ANSIBLE_CALLBACKS_ENABLED=CALLBACK,
    )


def cycles(journal_dir: Path) -> dict[str, tuple[float, float]]:
    """Each host's time from its drain to the end of its last phase, as one run's journal says."""
    [path] = journals(journal_dir)
    journal: dict[str, Any] = json.loads(path.read_text())
    spans: dict[str, tuple[float, float]] = {}
    for name, host in journal["hosts"].items():
        phases = host["phases"]
        drains = [when(p["started_at"]) for p in phases if p["phase"] == "drain"]
        if drains:
            spans[name] = (min(drains), max(when(p["ended_at"]) for p in phases if p.get("ended_at")))
    return spans


@pytest.mark.lab(hosts=6)
def test_two_controllers_never_cycle_one_host_at_once_nor_breach_the_floor(lab: Lab, tmp_path: Path) -> None:
    artifact = lab.build("v2", warmup=1.5)  # cycles long enough that the second run meets the first
    over_tcp = json.dumps(
        {
            "deploy_balancers": [
                {"name": b.name, "socket": b.admin_url, "backends": [b.backend]} for b in lab.balancers
            ]
        }
    )
    runs: dict[str, PlaybookRun] = {}
    lease = Path(lab.hosts[0].root) / "rollout-lease.lock"
    load = Traffic(lab.frontend_url, rate=50, seconds=600).start()
    try:
        with UpSampler(lab) as sampler:
            first = threading.Thread(
                target=lambda: runs.setdefault("unix", controller(lab, artifact, "unix", tmp_path))
            )
            first.start()
            deadline = time.monotonic() + 120
            while not lease.exists() and first.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert lease.exists(), "the first controller never took app01's lease"
            holder = json.loads(lease.read_text())["run_id"]
            runs["tcp"] = controller(lab, artifact, "tcp", tmp_path, "-e", over_tcp)
            first.join()
    finally:
        result = load.stop()

    unix, tcp = runs["unix"], runs["tcp"]
    assert unix.rc == 0, unix.evidence()
    assert tcp.rc != 0
    assert f"rollout lock 'rollout-lease' is held by run {holder}" in tcp.stdout, tcp.evidence()
    assert "failed at 'This host's rollout lease: acquired', before the host left rotation" in tcp.stdout, (
        tcp.evidence()
    )
    spans = {name: cycles(tmp_path / name / "journal") for name in ("unix", "tcp")}
    for host in set(spans["unix"]) & set(spans["tcp"]):
        (a_from, a_to), (b_from, b_to) = spans["unix"][host], spans["tcp"][host]
        assert a_to <= b_from or b_to <= a_from, (host, spans)
    assert len(sampler.samples) > 10 and min(sampler.samples) >= 4, sampler.samples
    assert result.failed == 0, result.failures()[:5]
    assert fleet_state(lab) == {h.name: ("v2", "UP") for h in lab.hosts}
    assert not lease.exists() and not (tmp_path / "unix" / "locks" / "app.lock").exists()
    assert not (tmp_path / "tcp" / "locks" / "app.lock").exists()
