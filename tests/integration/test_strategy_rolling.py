"""The fleet.rollout.rolling strategy, run for real by each ansible-core of the version matrix.

Plays of sleeps and failures on many local hosts (``ansible_connection: local``, no lab). Two clocks:
every host's shell task writes its own start and end times into per-host files (what really ran on
the host), and the test callback ``rollout_timeline`` logs when the controller queued each task and
got its result (the controller's view, free of module start-up time, for the latency checks). Timing
assertions are sanity bounds, many times wider than what the strategy takes (a few milliseconds).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import Core, ansible_env, core_matrix, empty_config, run_playbook

PLAYS = Path(__file__).resolve().parent / "strategy_plays"
HOSTS = [f"h{number:02d}" for number in range(1, 13)]
DEPRECATION = "Use of strategy plugins not included in ansible.builtin are deprecated"
# Latency bound: from a host's last result to the next host's first task, on the controller's clock.
# (typically 3-12 ms; the bound is generous so a busy machine does not fail it)
ADMISSION_BOUND_S = 0.75


@pytest.fixture(params=core_matrix())
def core(request: pytest.FixtureRequest) -> Core:
    found: Core = request.param
    print(f"ansible-core {found.version} from {found.venv.name} ({found.python})")  # shown by pytest -rA
    return found


@dataclass(frozen=True)
class Span:
    start: float
    end: float


@dataclass
class Run:
    rc: int
    output: str  # stdout and stderr
    stderr: str
    events: Path  # per-host files the tasks wrote
    timeline: list[dict[str, object]]  # the controller's events, in order

    def wrote(self, suffix: str) -> list[str]:
        """Hosts that wrote ``<host>.<suffix>``, sorted."""
        return sorted(path.stem for path in self.events.glob(f"*.{suffix}"))

    def on_host(self) -> dict[str, Span]:
        """Start and end of each host's shell work, by the host's own clock."""
        spans = {}
        for host in self.wrote("start"):
            start = float((self.events / f"{host}.start").read_text())
            spans[host] = Span(start, float((self.events / f"{host}.end").read_text()))
        return spans

    def on_controller(self, play: str) -> dict[str, Span]:
        """From the first task the controller queued for a host in ``play`` to the last result it got."""
        spans: dict[str, Span] = {}
        for event in self.timeline:
            if event["play"] != play:
                continue
            host, moment = str(event["host"]), float(str(event["t"]))
            known = spans.get(host)
            spans[host] = Span(known.start if known else moment, moment)
        return spans

    def ran(self, play: str, task: str) -> list[str]:
        """Hosts on which ``task`` of ``play`` ran (ok or failed), sorted."""
        return sorted(
            str(event["host"])
            for event in self.timeline
            if (event["play"], event["task"], event["event"]) in ((play, task, "ok"), (play, task, "failed"))
        )

    def summary(self) -> str:
        block = self.output[self.output.index("ROLLOUT:") :]
        return block.split("PLAY ", 1)[0]


def run_plays(
    core: Core, tmp_path: Path, playbook: str, *args: str, host_vars: dict[str, dict[str, object]], **env: str
) -> Run:
    """Run ``strategy_plays/<playbook>`` on h01..h12 (plus the unreachable ``gone``) with ``core``."""
    events, timeline = tmp_path / "events", tmp_path / "timeline.jsonl"
    events.mkdir()
    inventory = {
        "all": {
            "vars": {"ansible_python_interpreter": str(core.python), "events": str(events)},
            "children": {
                "fleet": {
                    "hosts": {
                        host: {"ansible_connection": "local", **host_vars.get(host, {})} for host in HOSTS
                    }
                },
                "unreachable": {
                    "hosts": {
                        # nothing listens on port 1 of loopback: refused at once, so unreachable
                        "gone": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}
                    }
                },
            },
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    done = run_playbook(
        PLAYS / playbook,
        tmp_path / "inventory.json",
        "-f",
        "10",
        *args,
        timeout=180,
        ansible_playbook=core.ansible_playbook,
        ANSIBLE_CONFIG=str(empty_config(tmp_path)),
        ANSIBLE_CALLBACK_PLUGINS=str(PLAYS / "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="rollout_timeline",
        ROLLOUT_TIMELINE=str(timeline),
        PATH=f"{core.venv / 'bin'}:{ansible_env()['PATH']}",
        **env,
    )
    records = [json.loads(line) for line in timeline.read_text().splitlines()] if timeline.exists() else []
    return Run(done.rc, done.stdout + done.stderr, done.stderr, events, records)


def most_at_once(spans: Iterable[Span]) -> int:
    """The largest number of spans overlapping at one moment (an end before a start at a tie)."""
    edges = sorted([(span.start, 1) for span in spans] + [(span.end, -1) for span in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def naps(seconds: dict[str, float], **extra: dict[str, object]) -> dict[str, dict[str, object]]:
    return {host: {"nap": nap, **extra.get(host, {})} for host, nap in seconds.items()}


WINDOW_PLAY = "A window of 4 after a canary, with an include, a handler, a tag and end_host"


def test_window_slides_and_canary_goes_first(core: Core, tmp_path: Path) -> None:
    uneven = dict(zip(HOSTS, [0.3, 1.2, 0.4, 0.9, 0.3, 0.5, 1.0, 0.3, 0.8, 0.5, 0.4, 0.3], strict=True))
    run = run_plays(
        core, tmp_path, "window.yml", "--limit", "all:!h12", "--skip-tags", "not_today",
        host_vars=naps(uneven),
    )  # fmt: skip
    assert run.rc == 0, run.output[-3000:]

    worked = [host for host in HOSTS if host not in ("h06", "h12")]  # h06 ends itself; --limit drops h12
    assert run.wrote("start") == worked
    assert run.wrote("end") == worked
    assert run.ran(WINDOW_PLAY, "Handler") == worked
    assert run.ran(WINDOW_PLAY, "Never run, skipped by its tag") == []
    assert "ROLLOUT: 11 ok, 0 failed, 0 not started, of 11" in run.output

    controller, on_host = run.on_controller(WINDOW_PLAY), run.on_host()
    assert most_at_once(controller.values()) == 4  # the window filled, and never overflowed
    assert most_at_once(on_host.values()) <= 4
    # the play's order: each host's first task is queued after the previous host's (h06's end_host
    # is a meta task, with no callback event: the test sees nothing of h06)
    starts = sorted(controller, key=lambda host: controller[host].start)
    assert starts == worked

    canary = controller["h01"]
    for host in starts[1:]:
        assert controller[host].start >= canary.end + 0.3, f"{host} started before the canary pause ended"
    assert min(span.start for host, span in on_host.items() if host != "h01") > on_host["h01"].end
    for host in starts[1:5]:
        assert controller[host].start - canary.end < 0.3 + ADMISSION_BOUND_S
    for host in starts[5:]:  # every later host starts when a slot frees, not when a batch ends
        freed = max(span.end for span in controller.values() if span.end <= controller[host].start)
        assert controller[host].start - freed < ADMISSION_BOUND_S, f"{host} waited for a slot"

    # a host holds its slot until its handler ran: the handler is the last thing the host did
    last_task = {str(event["host"]): event["task"] for event in run.timeline if event["play"] == WINDOW_PLAY}
    assert {last_task[host] for host in worked} == {"Handler"}
    if core.at_least_2_19:
        assert run.stderr.count(DEPRECATION) == 1
    else:
        assert DEPRECATION not in run.output


def test_budget_halts_admission_and_later_plays_still_run(core: Core, tmp_path: Path) -> None:
    # h12 fails in an earlier play: not part of the rollout, not counted against its budget.
    # Canary h01, then a window of 3: h03 fails (1 failure, within the budget of 1), h05 takes its
    # slot and fails too (2 > 1): no host starts after that, while h02 and h04 (its block fails,
    # its rescue runs) finish.
    hosts = naps(
        {"h01": 0.2, "h02": 3.0, "h03": 0.2, "h04": 3.0, "h05": 0.0} | {host: 0.2 for host in HOSTS[5:]},
        h03={"fail": True},
        h04={"fail_in_block": True},
        h05={"fail": True},
    )
    run = run_plays(core, tmp_path, "budget.yml", host_vars=hosts)
    assert run.rc == 2, run.output[-3000:]  # the failures carry into the later plays

    rolled, untouched = ["h01", "h02", "h03", "h04", "h05"], ["h06", "h07", "h08", "h09", "h10", "h11"]
    assert run.wrote("start") == rolled  # nothing ran on h06..h12
    assert run.wrote("end") == rolled  # the hosts in flight finished
    assert run.ran("Rollout", "Rescue") == ["h04"]
    assert sorted(run.on_controller("Rollout")) == rolled

    summary = run.summary()
    assert "ROLLOUT: 3 ok, 2 failed, 6 not started, of 11" in summary
    assert "halted: 2 hosts failed, more than rollout_max_failures=1" in summary
    assert "failed: h03, h05" in summary
    assert f"not started (untouched): {', '.join(untouched)}" in summary
    assert "skipped (failed or unreachable in an earlier play): h12" in summary

    # the groups the strategy publishes, for later plays; and the playbook ran to its end
    assert run.ran("Untouched", "Mark") == untouched
    assert run.ran("Ok", "Mark") == ["h01", "h02", "h04"]
    assert run.ran("Last", "Mark") == ["h01", "h02", "h04", *untouched]
    assert most_at_once(run.on_controller("Rollout").values()) == 3


def test_a_failed_canary_halts_whatever_the_budget(core: Core, tmp_path: Path) -> None:
    # a canary wave of 2 (h01, h02) in a window of 2 and a budget of 5: h01 fails, h02 finishes,
    # and the window never opens
    hosts = naps({"h01": 0.0, "h02": 1.0} | {host: 0.2 for host in HOSTS[2:6]}, h01={"fail": True})
    run = run_plays(core, tmp_path, "canary.yml", host_vars=hosts)
    assert run.rc == 2, run.output[-3000:]
    assert run.wrote("end") == ["h01", "h02"]
    assert "halted: canary failed: h01" in run.summary()
    assert "not started (untouched): h03, h04, h05, h06" in run.summary()


def test_every_host_failing_still_runs_the_later_plays(core: Core, tmp_path: Path) -> None:
    # Without the strategy's care ansible-core would skip every later play here: the whole play
    # failed (h01 fails, "gone" is unreachable, and unreachable counts as failed).
    run = run_plays(
        core, tmp_path, "all_fail.yml", "--forks", "1", host_vars=naps({"h01": 0.0}, h01={"fail": True}),
        ANSIBLE_DEPRECATION_WARNINGS="False",
    )  # fmt: skip
    assert run.rc == 4, run.output[-3000:]  # ansible-playbook's code for unreachable hosts
    assert "ROLLOUT: 0 ok, 2 failed, 0 not started, of 2" in run.output
    assert "failed: h01, gone" in run.output
    assert run.ran("Later", "Mark") == ["h02"]
    assert DEPRECATION not in run.output  # deprecation_warnings=False silences it (and all others)
    assert "rollout_window 2 is wider than forks (1); narrowing it to 1" in " ".join(run.output.split())
    assert most_at_once(run.on_controller("Rollout").values()) == 1


def test_end_play_halts_admission_in_the_plays_order(core: Core, tmp_path: Path) -> None:
    # h04 and h03 start together; h03 works longer, so h04 ends the play while h03 is in flight
    hosts = naps({host: 0.2 for host in HOSTS[:6]} | {"h03": 1.0})
    run = run_plays(core, tmp_path, "end_play.yml", host_vars=hosts)
    assert run.rc == 0, run.output[-3000:]
    assert run.wrote("start") == ["h03", "h04", "h05", "h06"]
    assert "halted: meta: end_play" in run.summary()
    assert "not started (untouched): h02, h01" in run.summary()
    controller = run.on_controller("Rollout")
    assert sorted(controller, key=lambda host: controller[host].start) == ["h06", "h05", "h04", "h03"]


def test_the_controller_idles_while_every_host_in_flight_works(core: Core, tmp_path: Path) -> None:
    # free's loop peeks at every host's next task about 700 times a second while workers are busy,
    # taking a core from the hosts' own work; the strategy waits for a result instead
    hosts = naps({"h01": 2.5, "h02": 2.5} | {host: 0.0 for host in HOSTS[2:6]})
    run = run_plays(core, tmp_path, "canary.yml", host_vars=hosts)
    assert run.rc == 0, run.output[-3000:]
    work = [e for e in run.timeline if e["task"] == "Work for nap seconds, writing the start and end times"]
    canary = [e for e in work if e["host"] in ("h01", "h02")]
    both_queued = max((e for e in canary if e["event"] == "start"), key=lambda e: float(str(e["t"])))
    first_result = min((e for e in canary if e["event"] != "start"), key=lambda e: float(str(e["t"])))
    wall = float(str(first_result["t"])) - float(str(both_queued["t"]))
    cpu = float(str(first_result["cpu"])) - float(str(both_queued["cpu"]))
    assert wall > 2.0  # both canary hosts worked all along
    # measured on 2 cores at load 6: spinning took 10-17 % of the time (more on an idle machine),
    # waiting for the result takes about 0.4 % (15 ms in 4 s)
    assert cpu < 0.05 * wall, f"the controller used {cpu:.2f} s of CPU in {wall:.2f} s of waiting"


def test_bad_option_fails_before_any_host_starts(core: Core, tmp_path: Path) -> None:
    run = run_plays(core, tmp_path, "window.yml", "-e", "rollout_window=150%", host_vars={})
    assert run.rc != 0
    assert "rollout_window must be a whole number of hosts (at least 1) or a percentage" in run.output
    assert "got '150%'" in run.output
    assert run.timeline == []
    assert run.wrote("start") == []
