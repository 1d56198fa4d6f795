"""fleet.rollout.prometheus_analysis against the lab's real Prometheus scraping the real HAProxy's built-in
exporter, under real traffic through the balancer, through real ansible-playbook runs."""

from __future__ import annotations

import json
import subprocess
import time
import typing as t
from pathlib import Path

import pytest

from lab.fleet import Lab
from tests.integration.lb_playbooks import Playbook, timed_run, wait_for_status
from tests.support import (
    ROOT,
    Core,
    QuietHandler,
    closed_port,
    core_matrix,
    record,
    run_play,
    serve_http,
    traffic,
)

MODULE = "fleet.rollout.prometheus_analysis"
CANARY = "app02"
RATE = 100.0  # requests per second through the frontend: about 33 a second to each of 3 servers
# The canary's share of 5xx answers over the last 10 s, as HAProxy 2.6's exporter counts them.
ERROR_RATE = (
    f'sum(rate(haproxy_server_http_responses_total{{proxy="app",server="{CANARY}",code="5xx"}}[10s]))'
    f' / sum(rate(haproxy_server_http_responses_total{{proxy="app",server="{CANARY}"}}[10s]))'
)
CONDITION = "value is none or value < 0.05"


def in_check_mode(playbook: Playbook) -> Playbook:
    """The last ``playbook.call`` runs in check mode (as ``--check`` would run it), in the same play."""
    task, _record = playbook.tasks[-2:]
    task["check_mode"] = True
    return playbook


def measured_values(result: dict[str, t.Any]) -> list[float | None]:
    return [m["value"] for m in result["measurements"]]


@pytest.mark.lab(hosts=3, prometheus=True)
def test_a_flaky_canary_fails_on_its_5xx_rate_with_the_evidence(lab: Lab, tmp_path: Path) -> None:
    # As in a rollout: the canary on its new release is out of rotation, then enabled, then baked.
    lab.install(CANARY, "v2", error_rate=0.2)
    wait_for_status(lab, CANARY, "UP")
    lab.runtime("lb1", f"set server app/{CANARY} state maint")
    options = {"query": ERROR_RATE, "condition": CONDITION, "bake": 30, "interval": 1}
    enable = {
        "socket": [str(lab.balancers[0].socket)],
        "backends": ["app"],
        "server": CANARY,
        "state": "enabled",
    }
    playbook = Playbook(tmp_path / "run", lab).call("enable", "fleet.rollout.lb_member", **enable)
    # the URL as the lab's inventory gives it to every play
    playbook.stamp("enabled").call("flaky", MODULE, url="{{ prometheus_url }}", **options)
    in_check_mode(playbook.call("checked", MODULE, url=lab.prometheus_url, **options))

    with traffic(lab, RATE) as load:
        done, results, wall = timed_run(playbook)
    seen = load.wait()

    assert results["enable"]["changed"] is True, results["enable"]
    assert done.recap("localhost")["ignored"] == 2, done.stdout
    for result in (results["flaky"], results["checked"]):
        assert result["failed"] is True and result["changed"] is False
        assert result["verdict"] == "fail"
        assert result["msg"] == result["reason"]
        assert result["reason"].startswith(f"condition {CONDITION!r} false at measurement "), result["reason"]
        assert ERROR_RATE in result["reason"] and lab.prometheus_url in result["reason"]
        assert result["query"] == ERROR_RATE and result["url"] == lab.prometheus_url
        # the evidence: the one sample of the sum, about the release's 20% of 500s
        (sample,) = result["samples"]
        assert sample["metric"] == {}
        assert 0.05 <= sample["value"] <= 0.45, result["samples"]
        assert result["value"] == sample["value"]
        assert result["failures"] == 1
        *before, last = result["measurements"]
        assert last["ok"] is False and last["value"] == sample["value"]
        assert all(m["ok"] for m in before), result["measurements"]
    flaky = results["flaky"]
    # Before the canary's first scraped answers, its rate is 0/0: no value, not a failure.
    assert all(m["value"] is None or m["value"] < 0.05 for m in flaky["measurements"][:-1])
    # It fails within a few scrapes of the canary's first answers, not at the end of the 30 s bake.
    detected = flaky["measurements"][-1]["at"] - float(results["enabled"])
    assert detected < 8, flaky["measurements"]
    assert flaky["elapsed"] < 8, flaky
    print(
        f"\nflaky canary: enabled, then failed {detected:.1f}s later ({flaky['elapsed']:.1f}s into the task, "
        f"{wall:.1f}s wall for the playbook); measurements {measured_values(flaky)}"
    )
    # The users' side agrees: every failed request was a 500 from the canary.
    assert {(f.status, f.host) for f in seen.failures()} == {(500, CANARY)}


@pytest.mark.lab(hosts=3, prometheus=True)
def test_a_good_canary_passes_and_changes_nothing_in_check_mode_too(lab: Lab, tmp_path: Path) -> None:
    lab.install(CANARY, "v2")  # a good release
    wait_for_status(lab, CANARY, "UP")
    options = {
        "url": lab.prometheus_url,
        "query": ERROR_RATE,
        "condition": CONDITION,
        "bake": 5,
        "interval": 1,
    }
    playbook = Playbook(tmp_path, lab).call("good", MODULE, **options)
    in_check_mode(playbook.call("checked", MODULE, **options))
    # A PromQL syntax error: Prometheus answers 400 with its own message.
    playbook.call("bad_promql", MODULE, **{**options, "query": "sum(rate(haproxy_server_bytes_in_total[10s]"})

    with traffic(lab, RATE) as load:  # the playbook starts a few scrapes later
        done, results, _wall = timed_run(playbook)
    assert load.wait().failed == 0

    recap = done.recap("localhost")
    assert (recap["ignored"], recap["changed"]) == (1, 0), done.stdout
    for result in (results["good"], results["checked"]):
        assert result.get("failed", False) is False, result["reason"]
        assert result["changed"] is False
        assert result["verdict"] == "pass"
        assert result["failures"] == 0
        assert 5 <= result["elapsed"] < 8, result
        assert len(result["measurements"]) >= 5
        assert all(m["ok"] for m in result["measurements"])
        assert 0.0 in measured_values(result), result["measurements"]  # real answers, not only "no value"
        assert result["reason"].startswith(f"condition {CONDITION!r} held in "), result["reason"]
    bad = results["bad_promql"]
    assert bad["failed"] is True and bad["changed"] is False
    assert bad["msg"].startswith(f"Prometheus at {lab.prometheus_url} refused the query "), bad["msg"]
    assert 'bad_data: invalid parameter "query": 1:' in bad["msg"] and "parse error" in bad["msg"]
    assert bad["msg"].endswith("(HTTP 400)")
    assert len(bad.get("measurements", [])) == 0


def test_a_prometheus_that_does_not_answer_and_bad_input_fail_naming_them(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    options = {"url": url, "query": "up", "condition": CONDITION}
    playbook = Playbook(tmp_path).call("closed", MODULE, bake=30, **options)
    playbook.call("interval", MODULE, **{**options, "interval": 0})
    playbook.call("scheme", MODULE, **{**options, "url": "127.0.0.1:9090"})
    playbook.call("empty", MODULE, **{**options, "query": " "})

    done, results, wall = timed_run(playbook, "--check")

    assert done.recap("localhost")["ignored"] == 4, done.stdout
    assert wall < 20
    for result in results.values():
        assert result["failed"] is True and result["changed"] is False
        assert "verdict" not in result
    assert results["closed"]["msg"] == f"Prometheus at {url} did not answer: Connection refused"
    assert results["interval"]["msg"] == "interval must be a number of seconds (0.1 or more), got 0.0"
    assert results["scheme"]["msg"] == (
        "url must be the http:// or https:// base URL of a Prometheus server, got '127.0.0.1:9090'"
    )
    assert results["empty"]["msg"] == "query must not be empty, got ' '"


class OneSeries(QuietHandler):
    """A Prometheus that answers every instant query with one sample, 0.2."""

    def do_GET(self) -> None:
        result = [{"metric": {"server": CANARY}, "value": [time.time(), "0.2"]}]
        self.answer(
            200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
        )


CONDITIONS = {
    "below": "value < limit and result[0].metric.server == 'app02'",
    "above": "value > limit",
    "through_a_variable": "{{ wanted }}",
}
EVALUATE = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError
from ansible_collections.fleet.rollout.plugins.plugin_utils._condition import evaluate_condition
try:
    from ansible.template import trust_as_template  # 2.19 and later: a playbook's strings are trusted
except ImportError:
    trust_as_template = str
loader = DataLoader()
judged = {}
for condition, value in json.loads(sys.argv[1]):
    result = [] if value is None else [{"metric": {"server": "app02"}, "value": value}]
    try:
        judged[condition + " @ " + repr(value)] = evaluate_condition(
            Templar(loader=loader, variables={"limit": 0.5}), loader, trust_as_template(condition),
            {"result": result, "value": value}, {"limit": 0.5})
    except InvalidInputError as error:
        judged[condition + " @ " + repr(value)] = error.message.split(": ")[0]
print(json.dumps(judged))
"""


def has_requests(core: Core) -> bool:
    python = str(core.venv / "bin" / "python")
    found = subprocess.run([python, "-c", "import requests"], capture_output=True, check=False)
    return found.returncode == 0


@pytest.mark.parametrize("core", core_matrix())
def test_the_condition_is_judged_alike_on_every_ansible_core(core: Core, tmp_path: Path) -> None:
    """Ansible's own templar judges the condition on every core (2.17's Conditional, 2.19's trusted
    expressions), with the task's variables; through a playbook where the core's venv has requests (a core
    without it says what to install)."""
    cases = [
        ["value is none or value < 0.05", None],
        ["value is none or value < 0.05", 0.2],
        ["value < limit", 0.2],
        ["result | map(attribute='value') | max < 0.1", 0.2],
        ["value < 0.05", None],
    ]
    evaluated = subprocess.run(
        [str(core.venv / "bin" / "python"), "-c", EVALUATE, json.dumps(cases)],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT / ".tmp" / "collections"), "PATH": "/usr/bin:/bin"},
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == {
        "value is none or value < 0.05 @ None": True,
        "value is none or value < 0.05 @ 0.2": False,
        "value < limit @ 0.2": True,
        "result | map(attribute='value') | max < 0.1 @ 0.2": False,
        "value < 0.05 @ None": "condition 'value < 0.05' could not be evaluated with result=[], value=None",
    }

    with serve_http(OneSeries) as url:
        tasks = [
            {
                "name": name,
                MODULE: {"url": url, "query": "x", "condition": condition},
                "register": name,
                "ignore_errors": True,
                "vars": {"limit": 0.5, "wanted": "value < limit"},
            }
            for name, condition in CONDITIONS.items()
        ]
        everything = "{" + ", ".join(f"'{name}': {name}" for name in CONDITIONS) + "}"
        done, saved = run_play(
            tmp_path,
            [*tasks, record(tmp_path, "results", everything)],
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={core.venv / 'bin' / 'python'}",
            inventory="localhost,",
            ansible_playbook=core.ansible_playbook,
        )
    assert done.rc == 0, done.stdout + done.stderr
    results = saved["results"]
    if not has_requests(core):
        for result in results.values():
            assert result["failed"] is True
            assert "needs the Python library requests on the controller" in result["msg"], result["msg"]
        return
    assert results["below"]["verdict"] == "pass", results["below"]
    assert results["through_a_variable"]["verdict"] == "pass", results["through_a_variable"]
    assert results["above"]["failed"] is True and results["above"]["verdict"] == "fail"
    assert results["above"]["samples"] == [{"metric": {"server": CANARY}, "value": 0.2}]
