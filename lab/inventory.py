"""The Ansible inventory `up` writes for a lab: groups `app` and `lb`, every variable a playbook needs."""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, Any

import yaml

from lab.sshd import client_key

if TYPE_CHECKING:
    from lab.fleet import Lab


def inventory_data(lab: Lab) -> dict[str, Any]:
    hosts = lab.hosts
    app_hosts: dict[str, dict[str, Any]] = {
        h.name: {
            "app_address": h.address,
            "app_root": str(h.root),
            "app_service": str(h.appctl),
            "app_url": h.url,
            "app_health_url": h.health_url,
        }
        for h in hosts
    }
    if lab.ssh_port:
        # Real SSH to each host's own address; the balancers stay on the controller.
        for host_vars in app_hosts.values():
            host_vars.update(
                ansible_connection="ssh",
                ansible_host=host_vars["app_address"],
                ansible_port=lab.ssh_port,
                ansible_user=getpass.getuser(),
                ansible_ssh_private_key_file=str(client_key(lab.state_dir.resolve())),
                ansible_ssh_common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            )
    lb_hosts = {
        b.name: {
            "haproxy_socket": str(b.socket),
            "haproxy_admin_url": b.admin_url,
            "haproxy_frontend_url": b.frontend_url,
            "haproxy_backend": b.backend,
        }
        for b in lab.balancers
    }
    for b in lab.balancers:
        if b.metrics_url:
            lb_hosts[b.name]["haproxy_metrics_url"] = b.metrics_url
    return {
        "all": {
            "vars": {
                # Every lab "host" is a directory and a process on this machine.
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "lab_dir": str(lab.state_dir.resolve()),
                "lab_artifacts": str(lab.artifacts.resolve()),
                "lab_frontend_url": lab.frontend_url,
                # each lab its own rollout locks: a test killed mid-rollout must not block the next lab
                "deploy_lock_dir": str(lab.state_dir.resolve() / "locks"),
                # the lab's Prometheus (`up --prometheus`), scraping every balancer's exporter
                **({"prometheus_url": lab.prometheus_url} if lab.prometheus_url else {}),
            },
            "children": {
                "app": {"vars": {"app_port": hosts[0].port, **deploy_vars(lab)}, "hosts": app_hosts},
                "lb": {"hosts": lb_hosts},
            },
        }
    }


def deploy_vars(lab: Lab) -> dict[str, Any]:
    """What the role fleet.rollout.deploy needs to know about a lab host, as a user would set it."""
    return {
        "deploy_root": "{{ app_root }}",
        "deploy_restart_command": "{{ app_service }} restart",
        "deploy_health_url": "{{ app_health_url }}",
        # The lab's tests mostly roll without traffic, where a canary bake could only wait for its
        # deadline: the analysis tests turn it on (-e rollout_canary_bake=N). The gates still run.
        "rollout_canary_bake": 0,
        "deploy_balancers": [
            {"name": b.name, "socket": str(b.socket), "backends": [b.backend]} for b in lab.balancers
        ],
    }


def write_inventory(lab: Lab) -> None:
    body = yaml.safe_dump(inventory_data(lab), sort_keys=False, default_flow_style=False)
    lab.inventory.write_text("---\n# Written by `python -m lab up`; rewritten on every up.\n" + body)
