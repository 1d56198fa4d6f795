"""Every module's DOCUMENTATION matches the argument spec it really uses, and its EXAMPLES parse."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import yaml
from ansible_collections.fleet.rollout.plugins.module_utils import _analysis_task, _health, _lb_tasks, _lock
from ansible_collections.fleet.rollout.plugins.modules import (
    health_check,
    lb_member,
    lb_member_info,
    prometheus_analysis,
    release,
    release_analysis,
    rollout_lock,
)
from ansible_collections.fleet.rollout.plugins.plugin_utils import _prometheus

SPECS: list[tuple[ModuleType, dict[str, dict[str, Any]]]] = [
    (lb_member, _lb_tasks.MEMBER_ARGUMENT_SPEC),
    (lb_member_info, _lb_tasks.INFO_ARGUMENT_SPEC),
    (health_check, _health.ARGUMENT_SPEC),
    (release, release.ARGUMENT_SPEC),
    (rollout_lock, _lock.ARGUMENT_SPEC),
    (release_analysis, _analysis_task.ANALYSIS_ARGUMENT_SPEC),
    (prometheus_analysis, _prometheus.ARGUMENT_SPEC),  # docs only: the action plugin has the code
]


@pytest.mark.parametrize(("module", "spec"), SPECS, ids=lambda v: getattr(v, "__name__", "").rsplit(".")[-1])
def test_documentation_matches_the_argument_spec(module: ModuleType, spec: dict[str, dict[str, Any]]) -> None:
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert set(documented) == set(spec)
    for name, option in spec.items():
        doc = documented[name]
        assert doc["type"] == option["type"], name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("choices") == option.get("choices"), name
        assert doc.get("required", False) == option.get("required", False), name
        assert doc.get("elements") == option.get("elements"), name


@pytest.mark.parametrize(("module", "spec"), SPECS, ids=lambda v: getattr(v, "__name__", "").rsplit(".")[-1])
def test_examples_and_return_are_yaml(module: ModuleType, spec: dict[str, dict[str, Any]]) -> None:
    assert isinstance(yaml.safe_load(module.EXAMPLES), list)
    assert isinstance(yaml.safe_load(module.RETURN), dict)
