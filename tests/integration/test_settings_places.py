"""Settings work wherever users put them: the same rollout with its settings in each place a user of Ansible
puts them, and the places that cannot work refused before any host is touched."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.fleet import Lab
from lab.inventory import deploy_vars, inventory_data
from tests.support import PlaybookRun, deploy_report, empty_config, fleet_state, run_playbook

# Each place gets the role's settings and the rollout's options there.
ROLLOUT = {"rollout_window": 2, "rollout_canary": 1}


def role_settings(lab: Lab, version: str) -> dict[str, Any]:
    """Every setting the role needs, as plain values (no reference to the lab's own app_* variables)."""
    return {
        **deploy_vars(lab),
        "deploy_root": None,  # per host: filled in by the places that can hold it (see host_settings)
        "deploy_restart_command": None,
        "deploy_health_url": None,
        "deploy_version": version,
        "deploy_artifact": str(lab.build(version)),
        "deploy_health": {"deadline": 10},
    }


def host_settings(lab: Lab, version: str, host_name: str) -> dict[str, Any]:
    host = lab.host(host_name)
    settings = role_settings(lab, version)
    settings.update(
        deploy_root=str(host.root),
        deploy_restart_command=f"{host.appctl} restart",
        deploy_health_url=host.health_url,
    )
    return settings


def shared_settings(lab: Lab, version: str) -> dict[str, Any]:
    """The settings as one set for every host: the per-host ones through the lab's app_* host variables."""
    settings = role_settings(lab, version)
    settings.update(
        deploy_root="{{ app_root }}",
        deploy_restart_command="{{ app_service }} restart",
        deploy_health_url="{{ app_health_url }}",
    )
    return settings


def bare_inventory(lab: Lab, directory: Path) -> Path:
    """The lab's inventory without any deploy_* setting of the app group: a place puts them."""
    data = inventory_data(lab)
    app_vars = data["all"]["children"]["app"]["vars"]
    for name in list(app_vars):
        if name.startswith("deploy_"):
            del app_vars[name]
    directory.mkdir(parents=True, exist_ok=True)
    inventory = directory / "inventory.yml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    return inventory


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(directory: Path, inventory: Path, playbook: Path | str, *args: str) -> PlaybookRun:
    config = str(empty_config(directory / "config"))
    return run_playbook(Path(playbook), inventory, "-f", "10", *args, ANSIBLE_CONFIG=config)


def extra(values: dict[str, Any]) -> tuple[str, str]:
    return "-e", json.dumps(values)


# ---- the places ------------------------------------------------------------------------------------------
# Each returns the ansible-playbook run of a rollout of `version` with its settings in that place.
Place = Callable[[Lab, Path, str], PlaybookRun]


def in_group_vars(lab: Lab, directory: Path, version: str) -> PlaybookRun:
    inventory = bare_inventory(lab, directory)
    write_yaml(directory / "group_vars" / "app.yml", shared_settings(lab, version))
    return run(directory, inventory, "fleet.rollout.deploy", *extra(ROLLOUT))


def in_host_vars(lab: Lab, directory: Path, version: str) -> PlaybookRun:
    inventory = bare_inventory(lab, directory)
    for host in lab.hosts:
        write_yaml(directory / "host_vars" / f"{host.name}.yml", host_settings(lab, version, host.name))
    return run(directory, inventory, "fleet.rollout.deploy", *extra(ROLLOUT))


def in_import_playbook_vars(lab: Lab, directory: Path, version: str) -> PlaybookRun:
    inventory = bare_inventory(lab, directory)
    playbook = [
        {"import_playbook": "fleet.rollout.deploy", "vars": {**shared_settings(lab, version), **ROLLOUT}}
    ]
    return run(directory, inventory, write_yaml(directory / "site.yml", playbook))


def in_extra_vars(lab: Lab, directory: Path, version: str) -> PlaybookRun:
    inventory = bare_inventory(lab, directory)
    return run(
        directory, inventory, "fleet.rollout.deploy", *extra({**shared_settings(lab, version), **ROLLOUT})
    )


def own_play(how: str, serial: bool) -> Place:
    """The role in a user's own play, its settings in the play's vars."""

    def place(lab: Lab, directory: Path, version: str) -> PlaybookRun:
        inventory = bare_inventory(lab, directory)
        play: dict[str, Any] = {"hosts": "app", "gather_facts": False, "vars": shared_settings(lab, version)}
        if serial:
            play["serial"] = 1
        if how == "roles":
            play["roles"] = [{"role": "fleet.rollout.deploy"}]
        else:
            play["tasks"] = [
                {"name": "Deploy", "ansible.builtin.include_role": {"name": "fleet.rollout.deploy"}}
            ]
        return run(directory, inventory, write_yaml(directory / "site.yml", [play]))

    return place


PLACES = {
    "group_vars": in_group_vars,
    "host_vars": in_host_vars,
    "import_playbook-vars": in_import_playbook_vars,
    "extra-vars": in_extra_vars,
    "own-play-roles": own_play("roles", serial=False),
    "own-play-roles-serial": own_play("roles", serial=True),
    "own-play-include_role": own_play("include_role", serial=False),
    "own-play-include_role-serial": own_play("include_role", serial=True),
}


@pytest.mark.lab(hosts=3)
@pytest.mark.parametrize("name", list(PLACES))
def test_every_place_rolls_the_fleet_to_the_same_end(lab: Lab, tmp_path: Path, name: str) -> None:
    done = PLACES[name](lab, tmp_path, "v2")
    assert done.rc == 0, f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert fleet_state(lab) == {h.name: ("v2", "UP") for h in lab.hosts}
    # no warning that every run prints (the strategy's deprecation aside, see the README)
    warnings = [line for line in done.stderr.splitlines() + done.stdout.splitlines() if "WARNING]" in line]
    assert [w for w in warnings if "eprecat" not in w] == []
    if not name.startswith("own-play"):
        report = deploy_report(done)
        assert (report["result"], report["version"], report["fleet_version"]) == ("complete", "v2", "v2")
    assert not list((lab.state_dir / "locks").glob("*.lock")), "the lock outlived the run"


def misplaced_rollout_option(lab: Lab, directory: Path) -> PlaybookRun:
    inventory = bare_inventory(lab, directory)
    write_yaml(directory / "group_vars" / "app.yml", {**shared_settings(lab, "v9"), "rollout_window": 3})
    return run(directory, inventory, "fleet.rollout.deploy")


def misplaced_strategy(lab: Lab, directory: Path) -> PlaybookRun:
    inventory = bare_inventory(lab, directory)
    write_yaml(directory / "group_vars" / "app.yml", shared_settings(lab, "v9"))
    write_yaml(directory / "host_vars" / "app02.yml", {"rollout_strategy": "linear"})
    return run(directory, inventory, "fleet.rollout.deploy")


@pytest.mark.lab(hosts=3)
@pytest.mark.parametrize(
    ("place", "named"),
    [
        (misplaced_rollout_option, "rollout_window (set on app01, app02, app03)"),
        (misplaced_strategy, "rollout_strategy (set on app02)"),
    ],
    ids=["rollout_window-in-group_vars", "rollout_strategy-in-host_vars"],
)
def test_play_settings_in_the_inventory_fail_before_any_host_is_touched(
    lab: Lab, tmp_path: Path, place: Callable[[Lab, Path], PlaybookRun], named: str
) -> None:
    before = {h.name: sorted(p.name for p in (h.root / "releases").iterdir()) for h in lab.hosts}
    done = place(lab, tmp_path)
    assert done.rc != 0
    assert named in done.stdout, done.stdout[-3000:]
    assert "Set them with -e, in the vars of the play, or in the vars of the import_playbook" in done.stdout
    assert {h.name: sorted(p.name for p in (h.root / "releases").iterdir()) for h in lab.hosts} == before
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    assert not list((lab.state_dir / "locks").glob("*.lock"))
