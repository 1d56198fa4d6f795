#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drain, enable, put in maintenance or re-weight one server on one or several HAProxy balancers."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lb_member
short_description: Drain and confirm, or enable and confirm, a server behind HAProxy
version_added: 1.0.0
description:
  - Changes one server's state or weight through HAProxy's runtime API (the C(stats socket)), over a
    unix socket or TCP, on one or several balancers, in every backend that holds the server (or in the
    given O(backends)), and confirms the result by polling HAProxy every O(poll_interval) seconds.
  - O(state=drained) sets the server to drain, then waits until on every balancer it is out of
    rotation with no current session (C(scur)) and no queued request (C(qcur)) on two polls in a row.
  - O(state=enabled) sets the server ready (restoring its configured weight unless O(weight) is given),
    then waits until the balancer's own health check reports it UP. By default the server takes traffic
    only after that check has passed (see O(check_before_traffic)).
  - O(state=maintenance) takes the server out at once, without waiting for its sessions.
  - A capacity floor (O(min_healthy)) refuses to take a server out when too few others are UP.
  - Every name is validated before any socket is opened, and the socket must be at C(level admin).
  - The decision whether something changes is made from one observation before acting, so a second
    identical run reports no change.
extends_documentation_fragment:
  - fleet.rollout.attributes
  - fleet.rollout.haproxy
attributes:
  diff_mode:
    support: full
options:
  socket:
    description:
      - HAProxy runtime API of each balancer, a unix socket path or V(tcp://host:port).
      - Several balancers are drained (or enabled) at the same time and all of them are confirmed.
      - The socket must be declared with C(level admin).
  server:
    description:
      - Name of the server in the HAProxy configuration (C(server <name> ...)).
      - Only letters, digits, V(-), V(_), V(.) and V(:) are accepted, as in HAProxy itself.
    type: str
    required: true
  backends:
    description:
      - Backends in which to act. Each must exist and hold O(server).
      - When omitted, every backend of each balancer that holds O(server) is acted on.
    type: list
    elements: str
  state:
    description:
      - V(drained) takes the server out of rotation and waits until it has no session left.
      - V(enabled) puts it back into rotation and waits until HAProxy's health check reports it UP.
      - V(maintenance) puts it in maintenance at once, without waiting for its sessions.
      - When omitted, only O(weight) is applied.
    type: str
    choices: [enabled, drained, maintenance]
  weight:
    description:
      - Weight to set, a number from V(0) to V(256) or a percentage of the server's configured weight
        such as V(25%) (HAProxy rounds down, so give servers a large configured weight for fine shares).
      - With O(state=enabled) and no O(weight), the configured weight is restored.
    type: raw
  drain_to:
    description:
      - State the server is left in once drained. V(maint) also stops HAProxy's health checks of it.
    type: str
    choices: [drain, maint]
    default: drain
  drain_timeout:
    description:
      - Seconds to wait for the sessions of a draining server to finish.
      - After that the module fails, unless O(shutdown_sessions) is set.
      - A server found back in rotation meanwhile (a reload that lost the runtime state) is drained again.
        When HAProxy was reloaded during the drain, its previous process still serves the sessions it had,
        which the new one does not count; with a unix socket (or a loopback address) the module waits
        until that process has ended, within this timeout; elsewhere it warns that it cannot see them.
    type: float
    default: 60
  shutdown_sessions:
    description:
      - When the drain times out, kill the sessions that are left and report how many, instead of failing.
    type: bool
    default: false
  up_timeout:
    description:
      - Seconds to wait, after enabling, for HAProxy's own health check to report the server UP.
      - The check needs C(rise) successful checks at C(inter) interval, so allow at least that.
    type: float
    default: 60
  check_before_traffic:
    description:
      - HAProxy puts a server that leaves drain or maintenance straight back into rotation and checks it
        afterwards. When V(true), the server's health is marked down before it is set ready, so it takes
        a request only after C(rise) health checks have passed. A broken server never sees a user request.
      - Has no effect on a server without a health check (a warning says so).
    type: bool
    default: true
  min_healthy:
    description:
      - Capacity floor for O(state=drained) and O(state=maintenance), a number of servers or a
        percentage (rounded up) of the backend's active servers, down ones included.
      - Before taking the server out, the servers that are UP, ready and of non-zero weight are counted
        (backup servers are not). If taking this one out would leave fewer than the floor, the module
        waits up to O(capacity_timeout) for others to return, then fails without changing anything.
      - Does not apply when the server is already not UP.
    type: raw
  capacity_timeout:
    description:
      - Seconds to wait for O(min_healthy) to be met. In check mode the floor is checked once.
    type: float
    default: 60
  poll_interval:
    description:
      - Seconds between two observations while waiting for a drain, a health check or capacity.
    type: float
    default: 0.2
  hold:
    description:
      - With O(state=drained), seconds to keep the server out of rotation after the drain. A watcher left
        on the host that runs this task (a detached process) reads the balancers every O(poll_interval) and
        drains the server again wherever it is found back in rotation (an HAProxy reload that did not keep
        the runtime state, another tool), until the hold is over or the next C(lb_member) task for this
        server on the same sockets ends it, which it does before anything else and reports in RV(held).
      - 0 leaves no watcher.
    type: float
    default: 0
  server_state_files:
    description:
      - For balancers whose configuration has C(server-state-file) (and C(load-server-state-from-file)),
        the file of each such socket, a dict from a socket of O(socket) to its path. After each change the
        module writes the balancer's C(show servers state) there (atomically), so that a reload which does
        not save the state first still keeps what this module set, a drain above all.
    type: dict
    default: {}
notes:
  - A server whose status is DOWN while it drains (its application died) counts as drained once it has
    no session left; its status never reads DRAIN.
seealso:
  - module: fleet.rollout.lb_member_info
"""

EXAMPLES = r"""
- name: Drain app01 from every backend of the balancer, keeping 75% of the pool UP
  fleet.rollout.lb_member:
    socket: /run/haproxy/admin.sock
    server: app01
    state: drained
    min_healthy: 75%
    drain_timeout: 120

- name: Drain app01 on two balancers at once, kill what is left after 30 s and leave it in maintenance
  fleet.rollout.lb_member:
    socket:
      - /run/haproxy/admin.sock
      - tcp://127.0.0.1:9999
    server: app01
    backends: [app]
    state: drained
    drain_timeout: 30
    shutdown_sessions: true
    drain_to: maint

- name: Enable app01 again; it takes traffic only once HAProxy's own check passes
  fleet.rollout.lb_member:
    socket: /run/haproxy/admin.sock
    server: app01
    state: enabled
    up_timeout: 30
  register: enabled

- name: Show how long the server took to come UP on each balancer
  ansible.builtin.debug:
    msg: "{{ enabled.members | map(attribute='up_seconds') | list }}"

- name: Give the canary a tenth of its configured weight
  fleet.rollout.lb_member:
    socket: /run/haproxy/admin.sock
    server: app01
    weight: 10%
"""

RETURN = r"""
held:
  description:
    - What the watcher of an earlier O(hold) on this server did before this task ended it, one entry each
      time it found the server back in rotation and drained it again (each is also a warning).
  returned: success
  type: list
  elements: dict
  sample: [{"at": "2026-12-03T14:05:01.250Z", "balancer": "/run/haproxy/admin.sock", "backend": "app"}]
members:
  description:
    - The server in each backend of each balancer acted on.
    - Each entry says where it is with C(balancer) (the O(socket)), C(backend) and C(server), as an entry
      of RV(fleet.rollout.lb_member_info#module:servers) does.
  returned: success
  type: list
  elements: dict
  contains:
    status_before:
      description:
        Status as HAProxy's statistics reported it before the run (V(UP), V(DOWN 1/2), V(DRAIN), V(MAINT),
        ...).
      type: str
      sample: UP
    status_after:
      description: Status at the end of the run (predicted in check mode).
      type: str
      sample: DRAIN
    admin_state_before:
      description: V(ready), V(drain) or V(maint) before the run.
      type: str
      sample: ready
    admin_state_after:
      description: V(ready), V(drain) or V(maint) at the end of the run (predicted in check mode).
      type: str
      sample: drain
    weight_before:
      description: Weight before the run.
      type: int
      sample: 100
    weight_after:
      description: Weight at the end of the run (predicted in check mode).
      type: int
      sample: 100
    sessions_at_start:
      description: Current sessions (C(scur)) when the run started.
      type: int
      sample: 3
    queued_at_start:
      description: Queued requests (C(qcur)) when the run started.
      type: int
      sample: 0
    drain_seconds:
      description:
        Seconds from the drain order to the first poll that found no session left; null unless drained.
      type: float
      sample: 2.41
    up_seconds:
      description: Seconds from the enable order to the poll that found the server UP; null unless enabled.
      type: float
      sample: 0.62
    sessions_killed:
      description: Sessions killed after O(drain_timeout) when O(shutdown_sessions=true); null if none were.
      type: int
      sample: 2
    drain_reasserted:
      description:
        - Times the server was found back in rotation while the drain was waited for (an HAProxy reload
          that did not keep its runtime state, another tool) and was drained again; each is also a warning.
      type: int
      sample: 0
    commands:
      description: The runtime API commands sent (or, in check mode, that would be sent).
      type: list
      elements: str
      sample: ["set server app/app01 state drain"]
server:
  description: The server acted on.
  returned: success
  type: str
  sample: app01
state:
  description: The state asked for.
  returned: success
  type: str
  sample: drained
"""

from ansible_collections.fleet.rollout.plugins.module_utils._lb_tasks import MEMBER_TASK

main = MEMBER_TASK.run_as_module


if __name__ == "__main__":
    main()
