"""``rollout_window`` as a list (progressive widening), run for real by each ansible-core of the matrix.

The rolling strategy: after the canary wave, step i admits item i of the list hosts, at most that many at
once, and starts only when every host of the step before it finished; the last item is a window sliding
over the rest. Each host's shell task writes its own start and end times (the hosts' clock) and the test
callback logs the controller's view, as in test_strategy_rolling.py, whose helpers this file uses.
Under ``-e rollout_strategy=linear`` the deploy playbook's roll and revert plays pass the list to
``serial``, and halt_linear.yml still ends the play once failures pass the budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lab.fleet import Lab
from tests.integration.test_strategy_rolling import (
    ADMISSION_BOUND_S,
    HOSTS,
    PLAYS,
    Core,
    Span,
    core,
    most_at_once,
    naps,
    run_plays,
)
from tests.support import ROOT, deploy_report, fleet_state, run_deploy

__all__ = ["core"]  # the fixture, with the version matrix

STEPS_PLAY = "Rollout in steps"
WORK = "Work for nap seconds, writing the start and end times"
QUICK_HEALTH = ("-e", json.dumps({"deploy_health": {"deadline": 3}}))


def step_report(name: str, steps: list[list[str]], spans: dict[str, Span]) -> str:
    """One line per step: its hosts, when they ran (from the first start), and how many ran at once."""
    zero = min(span.start for span in spans.values())
    lines = [f"{name} (seconds from the first start)"]
    for number, hosts in enumerate(steps):
        mine = [spans[host] for host in hosts]
        lines.append(
            f"  step {number}: {hosts[0]}..{hosts[-1]} ({len(hosts)}) "
            f"{min(s.start for s in mine) - zero:6.2f} -> {max(s.end for s in mine) - zero:6.2f}, "
            f"at most {most_at_once(mine)} at once"
        )
    return "\n".join(lines)


def assert_steps(steps: list[list[str]], windows: list[int], spans: dict[str, Span], clock: str) -> None:
    """Each step ran at most its window at once (on the controller's clock exactly that many, when the
    step has that many hosts: the window filled), and no host of a step started before every host of
    the step before it ended. (On the hosts' clock a short task can end before another one's module
    has started, so the window need not look full there.)"""
    for number, (hosts, window) in enumerate(zip(steps, windows, strict=True)):
        peak = most_at_once([spans[host] for host in hosts])
        assert peak <= window, f"step {number} ran {peak} at once ({clock})"
        if clock == "controller":
            assert peak == min(window, len(hosts)), f"step {number} ran only {peak} at once ({clock})"
    for number in range(1, len(steps)):
        ended = max(spans[host].end for host in steps[number - 1])
        started = min(spans[host].start for host in steps[number])
        assert started > ended, f"step {number} started before step {number - 1} ended ({clock})"


@pytest.mark.parametrize(
    ("given", "last_window"),
    [
        ((), 3),  # the play's vars: [1, 2, "33%"], 33% of 12 hosts is 3
        (("-e", '{"rollout_window": [1, 2, "25%"]}'), 3),  # a real list from -e JSON
        (("-e", "rollout_window=[1,2,4]"), 4),  # the text "[1,2,4]" from -e key=value
    ],
    ids=["play-vars", "extra-vars-json", "extra-vars-text"],
)
def test_steps_widen_one_after_another(
    core: Core, tmp_path: Path, given: tuple[str, ...], last_window: int
) -> None:
    # canary h01; step 1: h02 alone; step 2: h03 and h04 together, h04 slow: step 3 waits for it although
    # h03 finished long before; step 3: h05..h12 in a window sliding over them
    uneven = [0.3, 0.3, 0.2, 1.5, 0.3, 1.2, 0.4, 0.9, 0.3, 0.6, 0.3, 0.4]
    run = run_plays(
        core, tmp_path, "steps.yml", *given, host_vars=naps(dict(zip(HOSTS, uneven, strict=True)))
    )
    assert run.rc == 0, run.output[-3000:]
    assert run.wrote("end") == HOSTS
    assert "ROLLOUT: 12 ok, 0 failed, 0 not started, of 12" in run.output

    steps = [["h01"], ["h02"], ["h03", "h04"], HOSTS[4:]]
    windows = [1, 1, 2, last_window]
    controller, on_host = run.on_controller(STEPS_PLAY), run.on_host()
    print(step_report(f"{core.version} {' '.join(given) or 'play vars'}, on the hosts", steps, on_host))
    print(
        step_report(f"{core.version} {' '.join(given) or 'play vars'}, on the controller", steps, controller)
    )
    assert_steps(steps, windows, controller, "controller")
    assert_steps(steps, windows, on_host, "hosts")
    assert sorted(controller, key=lambda host: controller[host].start) == HOSTS  # the play's order

    # the last step slides: a host starts as soon as a slot frees, not when a batch ends
    last = steps[-1]
    for host in last[last_window:]:
        freed = max(
            controller[other].end for other in last if controller[other].end <= controller[host].start
        )
        assert controller[host].start - freed < ADMISSION_BOUND_S, f"{host} waited for a slot"
    output = " ".join(run.output.split())
    assert "canary wave ok (h01); opening the window of 1 in 0s" in output
    assert "step 2 of 3: 2 hosts, window 2" in output
    assert f"step 3 of 3: 8 hosts, window {last_window}" in output


def test_steps_keep_the_budget_the_rescue_and_forks(core: Core, tmp_path: Path) -> None:
    # -f 2 narrows step 2 (3 hosts) to 2 at a time; it still waits for all three. h04's block fails and
    # its rescue runs (not a failure), h05 fails (1, within the budget of 1), then in step 3 h07 fails too
    # (2 > 1): no host starts after it, h06 in flight finishes, h08..h12 are untouched.
    hosts = naps(
        {"h03": 0.6, "h04": 0.2, "h05": 0.0, "h06": 1.5, "h07": 0.0},
        h04={"fail_in_block": True},
        h05={"fail": True},
        h07={"fail": True},
    )
    run = run_plays(
        core, tmp_path, "steps.yml", "-f", "2", "-e", '{"rollout_window": [1, 3, 2]}', "-e",
        "rollout_max_failures=1", host_vars=hosts,
    )  # fmt: skip
    assert run.rc == 2, run.output[-3000:]
    rolled = HOSTS[:7]
    assert run.wrote("start") == rolled
    assert run.wrote("end") == rolled
    assert run.ran(STEPS_PLAY, "Rescue") == ["h04"]
    summary = run.summary()
    assert "ROLLOUT: 5 ok, 2 failed, 5 not started, of 12" in summary
    assert "halted: 2 hosts failed, more than rollout_max_failures=1" in summary
    assert "failed: h05, h07" in summary
    assert "not started (untouched): h08, h09, h10, h11, h12" in summary
    output = " ".join(run.output.split())
    assert (
        "rollout_window 1, 3, then 2 is wider than forks (2) in step 2: they run 2 hosts at a time" in output
    )

    steps = [["h01"], ["h02"], ["h03", "h04", "h05"], ["h06", "h07"]]
    controller = run.on_controller(STEPS_PLAY)
    print(step_report(f"{core.version} [1, 3, 2] -f 2, on the controller", steps, controller))
    assert_steps(steps, [1, 1, 2, 2], controller, "controller")
    assert_steps(steps, [1, 1, 2, 2], run.on_host(), "hosts")


MUST = "must be a whole number of hosts (at least 1) or a percentage from 1% to 100%"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("rollout_window=[1,0]", f"rollout_window item 2 {MUST}, got 0, in '[1,0]'"),
        ('{"rollout_window": []}', f"rollout_window {MUST}, or a non-empty list of them, got []"),
        (
            '{"rollout_window": [1, "150%", "x"]}',
            f"rollout_window item 2 {MUST}, got '150%', in [1, '150%', 'x']",
        ),
        ('{"rollout_window": [[1], 2]}', f"rollout_window item 1 {MUST}, got [1], in [[1], 2]"),
    ],
    ids=["zero", "empty", "150%", "nested"],
)
def test_a_bad_list_fails_before_any_host_starts(
    core: Core, tmp_path: Path, given: str, message: str
) -> None:
    run = run_plays(core, tmp_path, "steps.yml", "-e", given, host_vars={})
    assert run.rc == 1, run.output[-3000:]
    assert f"fleet.rollout.rolling: {message}" in " ".join(run.output.split())
    assert run.timeline == []
    assert run.wrote("start") == []


def playbook_serials() -> dict[str, str]:
    """The ``serial`` of every play of the deploy and rollback playbooks that has one, by play name."""
    serials = {}
    for playbook in ("deploy.yml", "rollback.yml"):
        for play in yaml.safe_load((ROOT / "playbooks" / playbook).read_text()):
            if "serial" in play:
                serials[f"{playbook}: {play['name']}"] = play["serial"]
    return serials


@pytest.mark.parametrize(
    ("given", "batches"),
    [
        ("rollout_window=[1,3,25%]", [["h01"], ["h02", "h03", "h04"], ["h05", "h06"]]),
        ('{"rollout_window": [1, 3, "25%"]}', [["h01"], ["h02", "h03", "h04"], ["h05", "h06"]]),
        ("rollout_window=3", [["h01", "h02", "h03"], ["h04", "h05", "h06"]]),  # a single value, as before
    ],
    ids=["text", "json", "single"],
)
def test_the_playbooks_serial_takes_the_list_and_halt_linear_still_halts(
    core: Core, tmp_path: Path, given: str, batches: list[list[str]]
) -> None:
    serials = playbook_serials()
    assert sorted(serials) == [
        "deploy.yml: Revert the hosts this run moved, when the rollout halted",
        "deploy.yml: Roll the release across the targets",
        "rollback.yml: Roll the targets back",
    ]
    assert len(set(serials.values())) == 1, serials  # one expression: what runs here is what they run
    # the roll play in miniature, with the playbooks' own serial and halt: batches of 1, 3, then 25% of
    # 10 hosts (2); h03 and h06 fail, 2 > rollout_max_failures=1 after h06's batch: the play ends
    play = {
        "name": "Linear rollout in steps",
        "hosts": "fleet[0:9]",
        "gather_facts": False,
        "strategy": "{{ rollout_strategy | default('fleet.rollout.rolling') }}",
        "serial": next(iter(serials.values())),
        "tasks": [
            {
                "name": "Work in a batch",
                "block": [
                    {
                        "name": "Note the batch",
                        "ansible.builtin.copy": {
                            "content": "{{ ansible_play_batch | to_json }}",
                            "dest": "{{ events }}/{{ inventory_hostname }}.batch",
                            "mode": "0600",
                        },
                    },
                    {"name": "Do the work", "ansible.builtin.include_tasks": str(PLAYS / "work.yml")},
                ],
                "always": [
                    {
                        "name": "Halt the linear rollout once failures pass the budget",
                        "ansible.builtin.import_tasks": str(ROOT / "playbooks" / "tasks" / "halt_linear.yml"),
                    }
                ],
            }
        ],
    }
    mark = {"name": "Mark", "ansible.builtin.debug": {"msg": "a later play ran"}}
    later = {"name": "Later", "hosts": "fleet[0:9]", "gather_facts": False, "tasks": [mark]}
    playbook = tmp_path / "linear.yml"
    playbook.write_text(json.dumps([play, later]))
    hosts = naps({host: 0.0 for host in HOSTS[:10]}, h03={"fail": True}, h06={"fail": True})
    run = run_plays(
        core, tmp_path, str(playbook), "-e", "rollout_strategy=linear", "-e", given, "-e",
        "rollout_max_failures=1", host_vars=hosts,
    )  # fmt: skip
    assert run.rc == 2, run.output[-3000:]
    assert "ROLLOUT:" not in run.output  # serial batches, not the rolling strategy
    seen = {tuple(json.loads((run.events / f"{host}.batch").read_text())) for host in run.wrote("batch")}
    assert sorted(seen) == [tuple(batch) for batch in batches]
    assert run.wrote("start") == HOSTS[:6]  # halted after h06's batch: h07..h10 untouched
    assert run.ran("Later", "Mark") == ["h01", "h02", "h04", "h05", "h07", "h08", "h09", "h10"]


@pytest.mark.lab(hosts=5)
def test_a_deploy_in_steps_halts_and_reverts_in_steps_with_either_strategy(lab: Lab) -> None:
    # rolling: canary app01, app02 alone, then app03..app05 in a window of 3: app04 fails, the roll halts
    # (app03 and app05 in flight finish), and the revert play takes the four hosts it moved back through
    # the same steps, with no canary wave: one host, then three
    bad = lab.build("v2", fail_hosts=["app04"])
    rolled = run_deploy(lab.inventory, "v2", bad, "-e", "rollout_window=[1,3]", *QUICK_HEALTH)
    assert rolled.rc != 0
    report = deploy_report(rolled)
    assert report["failed"] == {"app04": "Health-check the release"}, rolled.stdout[-4000:]
    assert report["result"] == "halted and reverted"
    assert sorted(report["reverted"]) == ["app01", "app02", "app03", "app05"]
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    output = " ".join(rolled.stdout.split())
    assert "ROLLOUT: 4 ok, 1 failed, 0 not started, of 5" in output  # the roll
    assert "ROLLOUT: 4 ok, 0 failed, 0 not started, of 4" in output  # the revert
    assert output.count("canary wave ok") == 1  # the roll's; the revert has none
    for step in ("step 1 of 2: 1 hosts, window 1", "step 2 of 2: 3 hosts, window 3"):
        assert output.count(f"fleet.rollout.rolling: {step}") == 2, step  # in the roll, then in the revert

    # linear: batches app01 | app02, app03 | app04, app05; app03 fails, halt_linear ends the roll after
    # its batch, and the revert play (serial [1, 2] too) takes app01 and app02 back
    worse = lab.build("v3", fail_hosts=["app03"])
    linear = run_deploy(
        lab.inventory, "v3", worse, "-e", "rollout_strategy=linear", "-e", '{"rollout_window": [1, 2]}',
        *QUICK_HEALTH,
    )  # fmt: skip
    assert linear.rc != 0
    report = deploy_report(linear)
    assert report["failed"] == {"app03": "Health-check the release"}, linear.stdout[-4000:]
    assert report["result"] == "halted and reverted"
    assert sorted(report["reverted"]) == ["app01", "app02"]
    assert report["untouched"] == ["app04", "app05"]
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    assert linear.stdout.count("PLAY [Roll the release across the targets]") == 2  # batches 1 and 2
    assert linear.stdout.count("PLAY [Revert the hosts this run moved, when the rollout halted]") == 2
