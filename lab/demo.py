"""``make demo``: what a user sees first. Until the deploy playbook lands it shows the lab and traffic."""

from __future__ import annotations

import time

from lab.fleet import Lab, format_status
from lab.traffic import Traffic, format_summary

DEMO_HOSTS = 10
DEMO_RATE = 100.0
DEMO_SECONDS = 10.0


def demo(lab: Lab) -> int:
    print(f"demo: bringing up a {DEMO_HOSTS}-host lab (real HAProxy, real app processes on 127.0.1.x)")
    started = time.monotonic()
    lab.up(hosts=DEMO_HOSTS)
    try:
        print(f"demo: lab up in {time.monotonic() - started:.1f}s; inventory {lab.inventory}")
        print("demo: NOTE the rolling deploy playbook (fleet.rollout.deploy) is not built yet; this demo")
        print(
            f"demo: only shows the lab serving {DEMO_RATE:.0f} req/s for {DEMO_SECONDS:.0f}s through HAProxy."
        )
        result = Traffic(lab.frontend_url, rate=DEMO_RATE, seconds=DEMO_SECONDS).run()
        print(format_summary(result))
        print(format_status(lab.status()))
        return 0 if result.failed == 0 else 1
    finally:
        stopped = lab.down()
        print(f"demo: lab down, stopped {len(stopped)} processes")
