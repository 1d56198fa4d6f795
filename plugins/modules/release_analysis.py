#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Judge a new release by what its users see through HAProxy: canary servers against the baseline."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_analysis
short_description: Judge a release by the responses HAProxy counted for its servers
version_added: 1.1.0
description:
  - Reads C(show stat) from one or several HAProxy balancers and compares the servers on the new release
    (O(canary)) with the others (the baseline) over the same interval, by the share of failed responses
    (5xx answers, broken-off responses C(eresp) and failed connections C(econ)) and the response time.
    Counts of a server are summed over the balancers.
  - The error verdict is a one-sided exact binomial test of the canary's failed responses against
    C(max(baseline share x max_error_ratio, baseline share + error_margin)), where the baseline share is
    taken at its upper confidence bound. It V(fail)s as soon as the canary is significantly worse, so
    the harm a bad release does is bounded by the evidence needed, not by a fixed bake; it V(pass)es once
    O(min_responses) canary responses were seen without that; until then it is V(inconclusive).
  - Latency fails when the canary's mean response time, estimated from HAProxy's moving average (C(rtime)),
    is above C(max(baseline x max_latency_ratio, baseline + latency_margin_ms)) over at least
    O(latency_min_responses) responses.
  - With O(bake) above 0 the balancers are read every O(interval) seconds until a verdict is in or the bake
    is over. A V(fail) verdict fails the task with the evidence; so does V(inconclusive) with
    O(inconclusive=fail).
  - Never changes anything; a socket at C(level user) is enough.
extends_documentation_fragment:
  - fleet.rollout.attributes
  - fleet.rollout.attributes.read_only
  - fleet.rollout.haproxy
  - fleet.rollout.analysis
options:
  backends:
    description:
      - Count only the servers of these backends. Default, every backend.
    type: list
    elements: str
  canary:
    description:
      - The servers on the new release. Their responses are summed.
    type: list
    elements: str
    required: true
  baseline:
    description:
      - The servers on the release being replaced. Default, every server that is neither in O(canary)
        nor in O(exclude).
    type: list
    elements: str
  exclude:
    description:
      - Servers counted neither as canary nor as baseline (hosts on the new release that are not judged).
    type: list
    elements: str
    default: []
  since:
    description:
      - Where counting starts, as earlier reads. Each item is a dict with C(servers), the RV(servers) list
        of an earlier result of this module, and C(server), a server name or null.
      - A canary server is counted from the read that names it in C(server). Any other server is
        counted from the earliest read that holds it. A server in no read is counted from this task's
        first read.
    type: list
    elements: dict
    default: []
  bake:
    description:
      - Seconds to keep reading for a verdict. V(0) judges once, at once (with O(since), the evidence so far).
    type: float
    default: 0
  settle:
    description:
      - End the bake at the first look where nothing leans towards worse (no p-value below 0.05), instead
        of waiting for a V(pass). With O(since) and the evidence so far, a gate that costs one read while
        the release looks fine, and that holds, reading, while it looks suspicious, until it fails or clears.
    type: bool
    default: false
  min_server_responses:
    description:
      - With O(settle), also read on while a server in O(hold_for) has fewer responses than this, so that
        each server has had the traffic to show a fault of its own before the bake ends.
    type: int
    default: 0
  hold_for:
    description:
      - With O(settle), the canary servers it reads on for until each is cleared (O(min_server_responses),
        O(clear_below)). Default, every canary server. Each must be in O(canary).
    type: list
    elements: str
  clear_below:
    description:
      - With O(settle), a percentage. A server in O(hold_for) is cleared once its error share is below it
        at 90% confidence (the one-sided Clopper-Pearson bound), for 10 about 22 responses without an
        error. A server that errs more is held until it fails or the bake ends.
      - Unset, a server is cleared by O(min_server_responses) alone.
    type: float
  return_servers:
    description:
      - The servers whose counters RV(servers) returns. Default, every server read.
      - A later task that counts only some servers from here (a host's own server, passed back in O(since))
        needs only theirs; at hundreds of servers the whole list makes every result that much bigger.
    type: list
    elements: str
  interval:
    description:
      - Seconds between reads during the bake.
    type: float
    default: 1
  max_error_ratio:
    description:
      - The canary may fail at most this many times the baseline's share of responses (1 or more).
    type: float
    default: 2.0
  error_margin:
    description:
      - Percentage points the canary's failure share may exceed the baseline's, whatever O(max_error_ratio)
        says; keeps a baseline with no failure from making a single one significant. 0 to 100.
    type: float
    default: 1.0
  confidence:
    description:
      - Confidence of each look (from 0.5, below 1). A V(fail) needs a p-value below 1 - confidence.
    type: float
    default: 0.999
  min_responses:
    description:
      - Canary responses needed for a V(pass).
    type: int
    default: 200
  max_latency_ratio:
    description:
      - The canary's mean response time may be at most this many times the baseline's (1 or more).
    type: float
    default: 1.5
  latency_margin_ms:
    description:
      - Milliseconds the canary's mean response time may exceed the baseline's, whatever
        O(max_latency_ratio) says.
    type: float
    default: 50
  latency_min_responses:
    description:
      - Canary responses needed before latency is judged.
    type: int
    default: 30
seealso:
  - module: fleet.rollout.lb_member_info
  - module: fleet.rollout.lb_member
"""

EXAMPLES = r"""
- name: Bake the canary app01 for up to 60 seconds under traffic
  fleet.rollout.release_analysis:
    socket: /run/haproxy/admin.sock
    backends: [app]
    canary: [app01]
    bake: 60
  register: analysis

- name: Later, judge the evidence gathered since that read, at once
  fleet.rollout.release_analysis:
    socket: /run/haproxy/admin.sock
    backends: [app]
    canary: [app01, app02]
    since:
      - server: app01
        servers: "{{ analysis.servers }}"
    inconclusive: pass
"""

RETURN = r"""
verdict:
  description: V(pass), V(fail) or V(inconclusive). A V(fail) fails the task, with these keys.
  returned: always
  type: str
  sample: pass
reason:
  description: The verdict in words, with the counts, the rates and the p-value.
  returned: always
  type: str
  sample: >-
    canary app01: 23 of 291 responses failed (7.9%) vs baseline: 0 of 2610 responses failed (0.0%):
    worse, p < 0.001
canary:
  description: What the canary servers answered over the interval.
  returned: always
  type: dict
  contains:
    servers:
      description: The canary servers.
      type: list
      elements: str
    responses:
      description: Responses counted.
      type: int
    errors:
      description: Failed responses counted.
      type: int
    error_rate:
      description: errors / responses.
      type: float
    latency_ms:
      description: Estimated mean response time in milliseconds; null when nothing was counted.
      type: float
baseline:
  description: What the baseline servers answered over the interval, as RV(canary).
  returned: always
  type: dict
error_threshold:
  description: The failure share the canary was tested against.
  returned: always
  type: float
  sample: 0.0126
p_value:
  description: The chance of at least the canary's failures if its true share were RV(error_threshold).
  returned: always
  type: float
  sample: 0.41
latency_threshold_ms:
  description: The response time the canary was held to; null when latency was not judged.
  returned: always
  type: float
looks:
  description: How many times the balancers were read and judged.
  returned: always
  type: int
elapsed:
  description: Seconds the task spent.
  returned: always
  type: float
servers:
  description:
    - Every server's counters at the last read (only those of O(return_servers) when set); pass it in
      O(since) to count from here later.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.fleet.rollout.plugins.module_utils._analysis_task import TASK

main = TASK.run_as_module


if __name__ == "__main__":
    main()
