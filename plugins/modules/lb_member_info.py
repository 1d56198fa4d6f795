#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Report every server of every backend (or those asked for) on one or several HAProxy balancers."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lb_member_info
short_description: Report the servers behind HAProxy, as its runtime API sees them
version_added: 1.0.0
description:
  - Reads C(show servers state) and C(show stat) from HAProxy's runtime API, over a unix socket or TCP,
    and returns one entry per server and backend and balancer.
  - Used by preflight checks, tests and reports. Never changes anything; a socket at C(level user) is enough.
extends_documentation_fragment:
  - fleet.rollout.attributes
  - fleet.rollout.attributes.read_only
  - fleet.rollout.haproxy
options:
  backends:
    description:
      - Report only these backends. Each must exist.
    type: list
    elements: str
  servers:
    description:
      - Report only these servers. Each must be in one of the reported backends.
    type: list
    elements: str
seealso:
  - module: fleet.rollout.lb_member
"""

EXAMPLES = r"""
- name: Read every server of every backend
  fleet.rollout.lb_member_info:
    socket: /run/haproxy/admin.sock
  register: lb

- name: Fail unless every server of backend app is UP
  ansible.builtin.assert:
    that: >-
      lb.servers | selectattr('backend', 'eq', 'app') | rejectattr('status', 'eq', 'UP') | list | length == 0

- name: Two servers on two balancers, one of them over TCP
  fleet.rollout.lb_member_info:
    socket:
      - /run/haproxy/admin.sock
      - tcp://127.0.0.1:9999
    backends: [app]
    servers: [app01, app02]
"""

RETURN = r"""
servers:
  description: One entry per server, backend and balancer.
  returned: success
  type: list
  elements: dict
  contains:
    balancer:
      description: The O(socket) of the balancer.
      type: str
      sample: /run/haproxy/admin.sock
    backend:
      description: Backend name.
      type: str
      sample: app
    server:
      description: Server name.
      type: str
      sample: app01
    address:
      description: Address and port of the server.
      type: str
      sample: 127.0.1.1:8080
    status:
      description:
        Status as HAProxy's statistics report it (V(UP), V(UP 1/2), V(DOWN), V(DOWN 1/2), V(DRAIN), V(MAINT),
        V(NOLB), V(no check)).
      type: str
      sample: UP
    admin_state:
      description: V(ready), V(drain) or V(maint), set by an operator (or inherited from a tracked server).
      type: str
      sample: ready
    op_state:
      description: Operational state of C(show servers state) (0 stopped, 1 starting, 2 running, 3 stopping).
      type: int
      sample: 2
    admin_flags:
      description: Raw C(srv_admin_state) bits of C(show servers state).
      type: int
      sample: 0
    weight:
      description: Current weight.
      type: int
      sample: 100
    initial_weight:
      description: Weight from the configuration.
      type: int
      sample: 100
    scur:
      description: Current sessions.
      type: int
      sample: 2
    qcur:
      description: Requests queued for this server.
      type: int
      sample: 0
    check_enabled:
      description: Whether HAProxy health-checks this server.
      type: bool
      sample: true
    check_status:
      description: Result of the last health check (V(L7OK), V(L7STS), V(L4CON), ...); empty without checks.
      type: str
      sample: L7OK
    check_code:
      description:
        - HTTP status (or agent code) of the last completed health check.
        - Empty while a check is running (RV(servers[].check_in_progress)), since HAProxy resets the
          code when a check starts.
      type: str
      sample: "200"
    check_in_progress:
      description: Whether a health check is running at the moment of the read.
      type: bool
    check_duration_ms:
      description: Duration of the last health check in milliseconds; null without checks.
      type: int
      sample: 1
    check_description:
      description: HAProxy's words for the last check result.
      type: str
      sample: Layer7 check passed
    last_check:
      description: Details of the last check (e.g. the HTTP reason).
      type: str
      sample: OK
    hrsp_5xx:
      description: Responses with a 5xx status this server sent since HAProxy started.
      type: int
      sample: 0
    backup:
      description: Whether the server is a backup server.
      type: bool
      sample: false
"""

from ansible_collections.fleet.rollout.plugins.module_utils._lb_tasks import INFO_TASK

main = INFO_TASK.run_as_module


if __name__ == "__main__":
    main()
