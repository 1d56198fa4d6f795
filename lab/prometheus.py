"""The lab's Prometheus: Debian's package, one process scraping every balancer's built-in exporter.

Its configuration and its storage live in the lab's state directory (``prometheus/``), wiped at every
``up`` so that a query never sees an earlier lab's series. It listens on 127.0.0.1 only and scrapes every
second, so a rate over a few seconds has samples moments after traffic starts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import yaml

from lab.paths import InStateDir
from lab.service import start_detached

PROMETHEUS = "/usr/bin/prometheus"
SCRAPE_INTERVAL = "1s"
READY_DEADLINE = 30.0


@dataclass(frozen=True)
class PrometheusSpec:
    port: int
    state_dir: Path  # the lab's prometheus/ directory

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    config = InStateDir("prometheus.yml")
    storage = InStateDir("data")
    log = InStateDir("prometheus.log")


def render_config(targets: dict[str, str]) -> str:
    """targets: balancer name -> host:port of its exporter; each balancer's series carry its name."""
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "haproxy",
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [target], "labels": {"balancer": name}} for name, target in targets.items()
                ],
            }
        ],
    }
    return "# Written by the lab; rewritten on every up.\n" + str(yaml.safe_dump(config, sort_keys=False))


def command(spec: PrometheusSpec) -> list[str]:
    return [
        PROMETHEUS,
        f"--config.file={spec.config}",
        f"--storage.tsdb.path={spec.storage}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address=127.0.0.1:{spec.port}",
        "--log.level=warn",
    ]


def start_prometheus(spec: PrometheusSpec, targets: dict[str, str]) -> int:
    """Write the config, check it, start Prometheus; return its pid once it is ready and every target was
    scraped (so a query may follow at once)."""
    if not Path(PROMETHEUS).is_file():
        raise RuntimeError(f"no {PROMETHEUS}: install Debian's prometheus package (make setup does)")
    shutil.rmtree(spec.state_dir, ignore_errors=True)
    spec.storage.mkdir(parents=True)
    spec.config.write_text(render_config(targets))
    process = start_detached(command(spec), spec.log)
    try:
        wait_ready(spec, process, set(targets))
    except RuntimeError:
        process.kill()
        process.wait()
        raise
    return process.pid


def wait_ready(
    spec: PrometheusSpec,
    process: subprocess.Popen[bytes],
    balancers: set[str],
    deadline: float = READY_DEADLINE,
) -> None:
    """Poll /-/ready, then the targets, until every balancer's exporter was scraped once and is up.

    Ready comes in a fraction of a second; the first scrape some 5 s later, as Prometheus 2.42 hands
    discovered targets (static ones too) to its scrape manager at most every 5 s, with no flag to change it.
    """
    end = time.monotonic() + deadline
    ready = False
    seen: set[str] = set()
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}; see {spec.log}")
        if not ready:
            ready = get(f"{spec.url}/-/ready") is not None
        if ready:
            seen = targets_up(spec.url)
            if balancers <= seen:
                return
        time.sleep(0.1)
    what = "ready" if not ready else f"scraping every balancer (up: {sorted(seen)})"
    raise RuntimeError(f"prometheus at {spec.url} not {what} after {deadline:.0f}s; see {spec.log}")


def targets_up(url: str) -> set[str]:
    """The balancers whose exporter Prometheus scraped successfully last time."""
    body = get(f"{url}/api/v1/targets?state=active")
    if body is None:
        return set()
    targets = json.loads(body)["data"]["activeTargets"]
    return {t["labels"].get("balancer", "") for t in targets if t.get("health") == "up"}


def get(url: str) -> str | None:
    """The body of a 200 answer, or None."""
    try:
        with urlopen(url, timeout=2) as answer:
            return str(answer.read().decode())
    except (URLError, OSError):
        return None
