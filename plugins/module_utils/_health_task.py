# Private to this collection: not a public API, may change without notice.
"""The task interface of fleet.rollout.health_check: argument spec and runner.

The module and its controller-side action plugin both use these, so a task behaves the same whether it
runs on the target or inside the controller.
"""

from __future__ import annotations

import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._health import HealthCheckSpec, HealthProbe
from ansible_collections.fleet.rollout.plugins.module_utils._http import OpenUrlFetch
from ansible_collections.fleet.rollout.plugins.module_utils._task_interface import TaskInterface

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = dict(
    url=dict(type="str"),
    tcp=dict(type="str"),
    method=dict(type="str", default="GET"),
    headers=dict(type="dict"),
    status=dict(type="list", elements="int", default=[200]),
    body_regex=dict(type="str"),
    json_query=dict(type="str"),
    json_expect=dict(type="raw"),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    successes=dict(type="int", default=1),
    stable_for=dict(type="float", default=0),
    interval=dict(type="float", default=0.5),
    timeout=dict(type="float", default=5),
    deadline=dict(type="float", default=60),
    failure_threshold=dict(type="int", default=3),
    warming_status=dict(type="list", elements="int", default=[503]),
    startup_grace=dict(type="float", default=10),
)
SPEC_CONSTRAINTS: dict[str, t.Any] = dict(
    mutually_exclusive=[("url", "tcp")],
    required_one_of=[("url", "tcp")],
    required_together=[("json_query", "json_expect")],
)


def check_health(params: dict[str, t.Any], check_mode: bool = False, diff: bool = False) -> dict[str, t.Any]:
    """Run the probe the validated params describe; a health check never changes anything."""
    spec = HealthCheckSpec(
        **{
            name: params[name]
            for name in ARGUMENT_SPEC
            if name not in ("headers", "status", "warming_status")
        },
        headers={str(k): str(v) for k, v in (params["headers"] or {}).items()},
        status=tuple(params["status"]),
        warming_status=tuple(params["warming_status"]),
    )
    return dict(changed=False, **HealthProbe(spec, fetch=OpenUrlFetch()).run())


TASK = TaskInterface("fleet.rollout.health_check", ARGUMENT_SPEC, check_health, SPEC_CONSTRAINTS)
