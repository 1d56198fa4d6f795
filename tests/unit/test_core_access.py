"""The start-up check of plugins/plugin_utils/_core_access.py: on every ansible-core of the version matrix it
finds every internal the rolling strategy reads on real ansible-core objects, and when one is missing it
fails before any host runs with an error that names it and the way out (``-e rollout_strategy=linear``)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ansible.errors import AnsibleError
from ansible_collections.fleet.rollout.plugins.plugin_utils import _core_access

from tests.support import ROOT, Core, ansible_env, core_matrix, empty_config, run_playbook

# Run by each venv's python: builds a real TaskQueueManager, rolling strategy and PlayIterator for a
# one-task play on localhost, then runs the check as they are and with one internal taken away at a time.
PROBE = textwrap.dedent(
    """
    import json

    from ansible.errors import AnsibleError
    from ansible.executor import play_iterator
    from ansible.executor.play_iterator import PlayIterator
    from ansible.executor.task_queue_manager import TaskQueueManager
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.playbook.play import Play
    from ansible.playbook.play_context import PlayContext
    from ansible.release import __version__
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager
    from ansible_collections.fleet.rollout.plugins.plugin_utils import _core_access
    from ansible_collections.fleet.rollout.plugins.strategy.rolling import StrategyModule

    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources="localhost,")
    variables = VariableManager(loader=loader, inventory=inventory)
    tqm = TaskQueueManager(inventory=inventory, variable_manager=variables, loader=loader, passwords={})
    play = Play.load(
        {"hosts": "localhost", "gather_facts": False, "tasks": [{"debug": {"msg": "probe"}}]},
        variable_manager=variables,
        loader=loader,
    )
    play_context = PlayContext(play=play)
    iterator = PlayIterator(
        inventory=inventory,
        play=play,
        play_context=play_context,
        variable_manager=variables,
        all_vars=variables.get_vars(play=play),
    )
    tqm._initialize_processes(1)  # as TaskQueueManager.run does; 2.17 only then sets _workers
    strategy = StrategyModule(tqm)


    def check():
        try:
            _core_access.check_core_internals(strategy, iterator)
        except AnsibleError as error:
            return str(error)
        return None


    def without(owner, name):
        saved = owner.__dict__.pop(name)
        try:
            return check()
        finally:
            setattr(owner, name, saved)


    def host_state_without(name):
        real_init = play_iterator.HostState.__init__

        def init_without(self, blocks):
            real_init(self, blocks)
            delattr(self, name)

        play_iterator.HostState.__init__ = init_without
        try:
            return check()
        finally:
            play_iterator.HostState.__init__ = real_init


    try:
        report = {
            "version": __version__,
            "intact": check(),
            "strategy": without(strategy, "_blocked_hosts"),
            "tqm": without(tqm, "_unreachable_hosts"),
            "iterator": without(iterator, "end_play"),
            "host_state": host_state_without("rescue_child_state"),
        }
        variables.set_nonpersistent_facts("localhost", {"deploy_analysis_mark": {"version": "v2"}})
        hostvars = HostVars(inventory=inventory, variable_manager=variables, loader=loader)
        report["set_facts"] = _core_access.set_facts_of(hostvars, "localhost")
        report["no_set_facts"] = _core_access.set_facts_of(hostvars, "elsewhere")
    finally:
        strategy.cleanup()
        tqm.cleanup()
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module", params=core_matrix())
def probe_report(request: pytest.FixtureRequest) -> tuple[Core, dict[str, Any]]:
    """The probe's findings under one ansible-core: one python start per venv for every case."""
    core: Core = request.param
    done = subprocess.run(
        [str(core.venv / "bin" / "python"), "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        env=ansible_env(PYTHONPATH=str(ROOT / ".tmp" / "collections")),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return core, report


def test_every_internal_is_found_on_real_core_objects(probe_report: tuple[Core, dict[str, Any]]) -> None:
    core, report = probe_report
    assert report["version"] == core.version
    assert report["intact"] is None


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("strategy", "StrategyBase._blocked_hosts"),
        ("tqm", "TaskQueueManager._unreachable_hosts"),
        ("iterator", "PlayIterator.end_play"),
        ("host_state", "HostState.rescue_child_state"),
    ],
)
def test_a_missing_internal_is_named_with_the_way_out(
    probe_report: tuple[Core, dict[str, Any]], case: str, named: str
) -> None:
    core, report = probe_report
    message = report[case]
    assert message is not None, f"the check missed {named}"
    assert f"lacks internals the strategy relies on: {named}." in message
    assert f"ansible-core {core.version}" in message
    assert "-e rollout_strategy=linear" in message


def test_set_facts_are_read_where_the_variable_manager_keeps_them(
    probe_report: tuple[Core, dict[str, Any]],
) -> None:
    """fleet.rollout.set_fact_values' fast path is there on every ansible-core of the matrix (without it the
    filter still answers, through a whole variables build per host)."""
    _, report = probe_report
    assert report["set_facts"] == {"deploy_analysis_mark": {"version": "v2"}}
    assert report["no_set_facts"] == {}


def test_a_changed_host_state_constructor_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    class KeywordOnlyHostState:
        def __init__(self, *, plan: list[object]) -> None:
            self.plan = plan

    monkeypatch.setattr(_core_access, "HostState", KeywordOnlyHostState)
    strategy = SimpleNamespace(**dict.fromkeys(_core_access.STRATEGY_ATTRIBUTES))
    strategy._tqm = SimpleNamespace(**dict.fromkeys(_core_access.TQM_ATTRIBUTES))
    iterator = SimpleNamespace(**dict.fromkeys(_core_access.ITERATOR_ATTRIBUTES))
    with pytest.raises(AnsibleError, match=r"relies on: HostState\(blocks=\.\.\.\)\. No host"):
        _core_access.check_core_internals(strategy, iterator)


# A rolling strategy on an ansible-core whose strategies lack _blocked_hosts.
STRATEGY_WITHOUT_BLOCKED_HOSTS = """\
from ansible_collections.fleet.rollout.plugins.strategy.rolling import StrategyModule as Rolling


class StrategyModule(Rolling):
    def __init__(self, tqm):
        super().__init__(tqm)
        del self._blocked_hosts
"""


@pytest.mark.parametrize("core", core_matrix())
def test_ansible_playbook_stops_before_the_first_task(core: Core, tmp_path: Path) -> None:
    (tmp_path / "strategy_plugins").mkdir()
    (tmp_path / "strategy_plugins" / "rolling_on_changed_core.py").write_text(STRATEGY_WITHOUT_BLOCKED_HOSTS)
    marker = tmp_path / "ran"
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: all\n"
        "  gather_facts: false\n"
        "  strategy: rolling_on_changed_core\n"
        "  tasks:\n"
        f"    - ansible.builtin.file: {{path: {marker}, state: touch}}\n"
    )
    run = run_playbook(
        playbook,
        "h1,h2,",
        "-c",
        "local",
        timeout=120,
        ansible_playbook=core.ansible_playbook,
        ANSIBLE_CONFIG=str(empty_config(tmp_path / "cfg")),
        ANSIBLE_STRATEGY_PLUGINS=str(tmp_path / "strategy_plugins"),
    )
    output = run.stdout + run.stderr
    assert run.rc != 0, output
    assert "lacks internals the strategy relies on: StrategyBase._blocked_hosts." in output
    assert "-e rollout_strategy=linear" in output
    assert "Traceback" not in output
    assert "TASK [" not in output
    assert not marker.exists()
