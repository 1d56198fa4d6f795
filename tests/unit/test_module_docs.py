"""Every module's DOCUMENTATION matches the argument spec it really uses, and its EXAMPLES parse."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from ansible_collections.fleet.rollout.plugins.module_utils import (
    _analysis_task,
    _health_task,
    _lb_tasks,
    _lock_task,
    _release_task,
)
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
    (health_check, _health_task.ARGUMENT_SPEC),
    (release, _release_task.TASK.argument_spec),
    (rollout_lock, _lock_task.ARGUMENT_SPEC),
    (release_analysis, _analysis_task.ANALYSIS_ARGUMENT_SPEC),
    (prometheus_analysis, _prometheus.ARGUMENT_SPEC),  # docs only: the action plugin has the code
]


@functools.cache
def rendered_docs() -> dict[str, Any]:
    """Every module's documentation as ansible-doc renders it (doc fragments merged), in one run."""
    names = [f"fleet.rollout.{module.__name__.rsplit('.', 1)[-1]}" for module, _spec in SPECS]
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-doc")), "--json", "-t", "module", *names],
        capture_output=True,
        text=True,
        check=True,
    )
    docs: dict[str, Any] = json.loads(run.stdout)
    return docs


def documented_options(module: ModuleType) -> dict[str, Any]:
    name = f"fleet.rollout.{module.__name__.rsplit('.', 1)[-1]}"
    return dict(rendered_docs()[name]["doc"]["options"])


@pytest.mark.parametrize(("module", "spec"), SPECS, ids=lambda v: getattr(v, "__name__", "").rsplit(".")[-1])
def test_documentation_matches_the_argument_spec(module: ModuleType, spec: dict[str, dict[str, Any]]) -> None:
    documented = documented_options(module)
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
