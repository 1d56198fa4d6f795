"""The deploy role's dict settings (deploy_balancers, deploy_health, deploy_hooks, deploy_analysis,
deploy_prometheus) have typed keys in its argument spec: a misspelt key fails the deploy playbook in its
preflight, naming the key, before any host leaves rotation. The spec's keys are the ones the tasks read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.fleet.rollout.plugins.filter.balancer_calls import KNOWN_KEYS
from ansible_collections.fleet.rollout.plugins.module_utils._health_task import ARGUMENT_SPEC as HEALTH_SPEC

from lab.fleet import Lab
from tests.support import ROOT, PlaybookRun, fleet_state, run_deploy

DICT_SETTINGS = ["deploy_balancers", "deploy_health", "deploy_hooks", "deploy_analysis", "deploy_prometheus"]
DEPLOY_TASKS = ROOT / "roles" / "deploy" / "tasks"


def entry_points(role: str) -> dict[str, Any]:
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return dict(spec["argument_specs"])


def keys_read(setting: str, *files: Path) -> set[str]:
    """The keys of a dict setting that task files read (`setting.key`)."""
    return {key for path in files for key in re.findall(rf"\b{setting}\.(\w+)", path.read_text())}


def typed(options: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {name: (option["type"], option.get("elements")) for name, option in options.items()}


def test_every_dict_setting_has_typed_and_described_keys() -> None:
    options = entry_points("deploy")["main"]["options"]
    for setting in DICT_SETTINGS:
        keys = options[setting]["options"]
        assert keys, setting
        for name, key in keys.items():
            assert key.get("type") and key.get("description"), f"{setting}.{name}"


def test_the_keys_are_the_ones_the_tasks_and_the_modules_take() -> None:
    options = entry_points("deploy")["main"]["options"]
    health = options["deploy_health"]["options"]
    # passed through to health_check with its types; the URL is deploy_health_url
    assert typed(health) == typed({k: v for k, v in HEALTH_SPEC.items() if k not in ("url", "tcp")})
    assert keys_read("deploy_health", DEPLOY_TASKS / "verify.yml") == set(health)
    assert set(options["deploy_balancers"]["options"]) == set(KNOWN_KEYS)
    steps = DEPLOY_TASKS / "cycle.yml"
    assert keys_read("deploy_hooks", steps) == set(options["deploy_hooks"]["options"])
    analysis = keys_read("deploy_analysis", *DEPLOY_TASKS.glob("*.yml"), ROOT / "playbooks" / "deploy.yml")
    assert analysis == set(options["deploy_analysis"]["options"])
    prometheus = keys_read("deploy_prometheus", DEPLOY_TASKS / "bake.yml", ROOT / "playbooks" / "deploy.yml")
    assert prometheus == set(options["deploy_prometheus"]["options"])


def test_the_preflight_and_rollback_entry_points_and_the_rollback_role_check_the_same_keys() -> None:
    deploy = entry_points("deploy")
    assert deploy["settings"]["options"] == {name: deploy["main"]["options"][name] for name in DICT_SETTINGS}
    shared = {name: spec for name, spec in deploy["rollback"]["options"].items() if "rollback" not in name}
    assert shared == {name: deploy["main"]["options"][name] for name in shared}
    rollback = entry_points("rollback")["main"]["options"]
    for setting in ("health", "balancers"):
        assert (
            rollback[f"rollback_{setting}"]["options"]
            == deploy["main"]["options"][f"deploy_{setting}"]["options"]
        )


def releases(lab: Lab) -> dict[str, list[str]]:
    return {h.name: sorted(p.name for p in (h.root / "releases").iterdir()) for h in lab.hosts}


def assert_refused_in_preflight(lab: Lab, run: PlaybookRun, named: str, before: dict[str, list[str]]) -> None:
    assert run.rc != 0
    assert "Validation of arguments failed" in run.stdout, run.stdout[-3000:]
    assert named in run.stdout, run.stdout[-3000:]
    assert "PLAY [Roll the release across the targets]" not in run.stdout  # no host's cycle started
    assert releases(lab) == before  # nothing staged
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    assert not list((lab.state_dir / "locks").glob("*.lock"))


@pytest.mark.lab(hosts=2)
def test_misspelt_keys_fail_the_preflight_naming_them(lab: Lab, tmp_path: Path) -> None:
    before = releases(lab)
    artifact = lab.build("v2")
    health = run_deploy(lab.inventory, "v2", artifact, "-e", json.dumps({"deploy_health": {"deadlin": 3}}))
    assert_refused_in_preflight(lab, health, "deploy_health.deadlin", before)

    # On the second host only, which the roll would reach after the canary moved: the preflight checks
    # every target.
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(lab.inventory.read_text())
    balancers = [{"socket": str(b.socket), "backend": b.backend} for b in lab.balancers]
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "app02.yml").write_text(yaml.safe_dump({"deploy_balancers": balancers}))
    balancer = run_deploy(inventory, "v2", artifact)
    assert_refused_in_preflight(lab, balancer, "deploy_balancers.backend", before)
