"""``python -m lab up|down|status|release|traffic|demo``: the lab from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lab import haproxy
from lab.demo import demo
from lab.fleet import Lab, LabError, format_status, state_of
from lab.release import ReleaseBehaviour, build_release
from lab.traffic import Traffic, format_summary

DEFAULT_DIR = Path(os.environ.get("FLEET_LAB_DIR", ".lab"))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m lab", description="The fleet.rollout local lab.")
    top.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="lab state directory (default .lab)")
    commands = top.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start HAProxy and N app hosts, write the inventory")
    up.add_argument("--hosts", type=int, default=3)
    up.add_argument("--balancers", type=int, default=1, help="HAProxy instances in front of the hosts")
    up.add_argument("--port", type=int, help="first port of the lab's block (default: first free block)")
    up.add_argument("--version", default="v1", help="release every host starts on")
    up.add_argument("--ssh", action="store_true", help="also run sshd; the inventory then uses SSH")
    up.add_argument(
        "--check-inter",
        type=int,
        default=haproxy.CHECK_INTER_MS,
        metavar="MS",
        help="HAProxy's check interval of a steady server",
    )
    up.add_argument(
        "--prometheus", action="store_true", help="also run Prometheus, scraping every balancer's exporter"
    )

    commands.add_parser("down", help="stop everything `up` started and free its ports")

    status = commands.add_parser("status", help="each host's release, running version, balancer view")
    status.add_argument("--json", action="store_true")

    release = commands.add_parser("release", help="build a release artifact (tar.gz) of the sample app")
    release.add_argument("version")
    release.add_argument("--out", type=Path, help="directory (default: the lab's artifacts directory)")
    release.add_argument("--warmup", type=float, default=0.0, help="seconds /health answers 503 after start")
    release.add_argument("--health-fail", action="store_true", help="/health always answers 500")
    release.add_argument("--error-rate", type=float, default=0.0, help="share of GET / answered 500")
    release.add_argument("--latency", type=float, default=0.0, help="seconds added to every GET /")
    release.add_argument("--crash", action="store_true", help="the app exits at start")
    release.add_argument("--fail-hosts", default="", help="comma-separated hosts whose /health fails")
    release.add_argument(
        "--error-hosts", default="", help="comma-separated hosts that err (--error-rate); default every host"
    )

    traffic = commands.add_parser("traffic", help="steady requests through the balancer, all recorded")
    traffic.add_argument("--rate", type=float, default=100.0, help="requests per second")
    traffic.add_argument("--seconds", type=float, default=10.0)
    traffic.add_argument("--out", type=Path, help="JSON-lines file of every request and the summary")
    traffic.add_argument("--url", help="default: the lab's first balancer")
    traffic.add_argument("--json", action="store_true", help="print the summary as JSON")

    commands.add_parser("demo", help="a 10-host lab, traffic, a rollout, the figures; then down")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    lab = Lab(args.dir)
    try:
        return run(args, lab)
    except (LabError, ValueError) as error:
        print(f"lab: {error}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace, lab: Lab) -> int:
    if args.command == "up":
        lab.up(
            hosts=args.hosts,
            balancers=args.balancers,
            port=args.port,
            version=args.version,
            ssh=args.ssh,
            prometheus=args.prometheus,
            check_inter_ms=args.check_inter,
        )
        described = state_of(lab)
        print(
            f"lab up: {args.hosts} hosts behind {len(described['balancers'])} HAProxy at {lab.frontend_url}"
            + (f", Prometheus at {lab.prometheus_url}" if lab.prometheus_url else "")
        )
        print(lab.inventory)
    elif args.command == "down":
        stopped = lab.down()
        print(f"lab down: stopped {len(stopped)} processes" + (f": {', '.join(stopped)}" if stopped else ""))
    elif args.command == "status":
        report = lab.status()
        print(json.dumps(report, indent=2) if args.json else format_status(report))
    elif args.command == "release":
        behaviour = ReleaseBehaviour(
            warmup=args.warmup,
            health_fail=args.health_fail,
            error_rate=args.error_rate,
            latency=args.latency,
            crash=args.crash,
            fail_hosts=tuple(h for h in args.fail_hosts.split(",") if h),
            error_hosts=tuple(h for h in args.error_hosts.split(",") if h),
        )
        print(build_release(args.version, args.out or lab.artifacts, behaviour))
    elif args.command == "traffic":
        result = Traffic(args.url or lab.frontend_url, rate=args.rate, seconds=args.seconds).run()
        if args.out:
            result.write(args.out)
        print(json.dumps(result.summary(), indent=2) if args.json else format_summary(result))
        return 0 if result.failed == 0 else 1
    elif args.command == "demo":
        return demo(lab)
    return 0
