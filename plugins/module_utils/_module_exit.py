# Private to this collection: not a public API, may change without notice.
"""How every module of this collection ends: its typed errors as fail_json, its warnings as warn()."""

from __future__ import annotations

import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._errors import FleetRolloutError

if t.TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule


def exit_module(module: AnsibleModule, work: t.Callable[[], dict[str, t.Any]]) -> None:
    """Run ``work`` and exit with its result. Warnings go through ``module.warn``: ``exit_json(warnings=)``
    is deprecated in ansible-core 2.21 and prints a deprecation warning on every run."""
    try:
        result = work()
    except FleetRolloutError as error:
        module.fail_json(msg=error.message, **error.details)
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    module.exit_json(**result)
