"""Steady HTTP traffic through the balancer, every request recorded: the lab's evidence of user impact.

Requests are sent on a fixed schedule (rate per second, for a bounded time) from a pool of threads, each
on a new connection, so a slow answer does not slow the schedule. Each record says when it was sent,
its status or error, which version and host answered, and its latency.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MAX_RATE = 2000.0
MAX_SECONDS = 3600.0
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Record:
    t: float  # seconds since the traffic started, when the request was sent
    status: int | None
    error: str | None
    version: str | None
    host: str | None
    latency: float

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


@dataclass
class TrafficResult:
    records: list[Record] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        return len(self.records)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.records if not r.ok)

    def failures(self) -> list[Record]:
        return [r for r in self.records if not r.ok]

    def hosts(self) -> Counter[str]:
        return Counter(r.host for r in self.records if r.ok and r.host)

    def versions(self) -> Counter[str]:
        return Counter(r.version for r in self.records if r.ok and r.version)

    def latency_percentiles(self) -> dict[str, float]:
        latencies = sorted(r.latency for r in self.records if r.ok)
        if not latencies:
            return {}

        def pick(q: float) -> float:
            return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1)

        return {"p50_ms": pick(0.50), "p90_ms": pick(0.90), "p99_ms": pick(0.99), "max_ms": pick(1.0)}

    def versions_over_time(self, bucket: float = 1.0) -> list[dict[str, Any]]:
        """Per time bucket: how many answers each version gave (and how many failed)."""
        buckets: dict[int, Counter[str]] = {}
        for r in self.records:
            label = r.version if r.ok and r.version else "failed"
            buckets.setdefault(int(r.t // bucket), Counter())[label] += 1
        return [{"t": i * bucket, **dict(counts)} for i, counts in sorted(buckets.items())]

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "seconds": round(self.seconds, 2),
            "latency": self.latency_percentiles(),
            "hosts": dict(sorted(self.hosts().items())),
            "versions": dict(sorted(self.versions().items())),
            "first_failures": [asdict(r) for r in self.failures()[:5]],
        }

    def write(self, path: Path) -> None:
        """JSON lines: one record per line, then the summary as the last line."""
        with path.open("w") as out:
            for r in self.records:
                out.write(json.dumps(asdict(r)) + "\n")
            out.write(json.dumps({"summary": self.summary()}) + "\n")


def format_summary(result: TrafficResult) -> str:
    s = result.summary()
    lines = [
        f"sent {s['sent']} requests in {s['seconds']}s, failed {s['failed']}",
        "latency " + ", ".join(f"{k} {v}" for k, v in s["latency"].items()),
        f"hosts served: {len(s['hosts'])} ({', '.join(f'{h}={n}' for h, n in s['hosts'].items())})",
        "versions: " + ", ".join(f"{v}={n}" for v, n in s["versions"].items()),
    ]
    timeline = result.versions_over_time(max(1.0, result.seconds / 10))
    lines.append(
        "versions over time: "
        + " | ".join(
            f"{row['t']:.0f}s " + " ".join(f"{k}={v}" for k, v in row.items() if k != "t") for row in timeline
        )
    )
    lines += [f"failure at {f['t']:.2f}s: {f['status'] or f['error']}" for f in s["first_failures"]]
    return "\n".join(lines)


class Traffic:
    """``Traffic(url, rate, seconds).start()`` runs in the background; ``wait()`` returns the result."""

    def __init__(self, url: str, rate: float = 100.0, seconds: float = 10.0, path: str | None = None) -> None:
        self.url = url
        self.rate = rate
        self.seconds = seconds
        self.path = path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._result = TrafficResult()
        self._lock = threading.Lock()

    def start(self) -> Traffic:
        if not 0 < self.rate <= MAX_RATE:
            raise ValueError(f"rate must be in (0, {MAX_RATE}], got {self.rate}")
        if not 0 < self.seconds <= MAX_SECONDS:
            raise ValueError(f"seconds must be in (0, {MAX_SECONDS}], got {self.seconds}")
        split = urlsplit(self.url)
        if split.scheme != "http" or not split.hostname or not split.hostname.startswith("127."):
            raise ValueError(f"traffic goes only to http://127.x.y.z URLs, not {self.url!r}")
        self._thread = threading.Thread(target=self._run, name="lab-traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> TrafficResult:
        """Stop sending early; requests in flight still finish and are recorded."""
        self._stop.set()
        return self.wait()

    def wait(self) -> TrafficResult:
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._result.records.sort(key=lambda r: r.t)
        return self._result

    def run(self) -> TrafficResult:
        return self.start().wait()

    def _run(self) -> None:
        total = int(self.rate * self.seconds)
        interval = 1.0 / self.rate
        workers = max(8, min(256, int(self.rate * 2)))
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lab-request") as pool:
            for i in range(total):
                # The schedule, not a wait for a condition: request i leaves at started + i/rate.
                if self._stop.wait(max(0.0, started + i * interval - time.monotonic())):
                    break
                pool.submit(self._one, started)
        self._result.seconds = time.monotonic() - started

    def _one(self, started: float) -> None:
        split = urlsplit(self.url)
        sent = time.monotonic()
        status: int | None = None
        error: str | None = None
        version = host = None
        conn = http.client.HTTPConnection(split.hostname or "", split.port or 80, timeout=REQUEST_TIMEOUT)
        try:
            conn.request("GET", self.path or split.path or "/", headers={"Connection": "close"})
            answer = conn.getresponse()
            answer.read()
            status = answer.status
            version, host = answer.getheader("X-Version"), answer.getheader("X-Host")
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        record = Record(round(sent - started, 4), status, error, version, host, time.monotonic() - sent)
        with self._lock:
            self._result.records.append(record)
