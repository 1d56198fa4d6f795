# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The documentation of an action plugin that runs on the controller only (plugins/action/ holds the code),
# as ansible.builtin.assert and ansible.builtin.debug are documented.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prometheus_analysis
short_description: Judge a release by a Prometheus query and a condition on its result
version_added: 1.1.0
description:
  - Runs an instant query (C(/api/v1/query)) against the Prometheus HTTP API at O(url) and evaluates
    O(condition) on its result, like the C(successCondition) of an Argo Rollouts analysis. With O(bake)
    above 0 it queries every O(interval) seconds until the bake is over.
  - Each query is a measurement. A measurement fails when O(condition) is false; once more than
    O(failure_limit) measurements failed, the task fails at once with the evidence (the query, the
    samples of the failing measurement, every measurement so far). Otherwise it passes when the bake is
    over, with verdict V(pass).
  - When no measurement had a value (the query gave no sample, or only NaN, every time) the verdict is
    V(inconclusive), and O(inconclusive) says what that does.
  - Runs on the controller, whatever host the task is for, with the Python library C(requests). Read-only,
    so it runs in full in check mode; it never reports a change.
  - An error of Prometheus (no answer, an HTTP error, a query Prometheus refuses, such as a PromQL syntax
    error) fails the task at once, with a message that names the URL and what Prometheus said, whatever
    O(failure_limit) says. O(failure_limit) counts only measurements whose condition was false.
author:
  - fleet.rollout developers (!UNKNOWN)
requirements:
  - requests (on the controller)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - fleet.rollout.analysis
attributes:
  action:
    support: full
  async:
    support: none
  become:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Queries are read-only; the task runs in full in check mode.
  connection:
    support: none
  delegation:
    support: none
    details: It always runs on the controller; delegation changes only whose variables it sees.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: all
options:
  url:
    description:
      - Base URL of the Prometheus server, V(http://) or V(https://), with its path prefix if it has one
        (V(https://example.org/prometheus)); the task queries O(url) C(/api/v1/query).
    type: str
    required: true
  query:
    description:
      - A PromQL expression, evaluated as an instant query at the moment of each measurement. It must give
        an instant vector or a scalar; a query of one series (a C(sum), a ratio of two sums) gives one
        sample, whose value is C(value) in O(condition).
    type: str
    required: true
  condition:
    description:
      - A Jinja2 expression, written as a C(when) is (without C({{ }})), that is true when a measurement is
        good. It is evaluated on the controller with Ansible's templar (never Python's C(eval)), with the
        task's variables and two of its own.
      - C(result) is the list of samples, each a dict with C(metric) (the series' labels) and C(value) (a
        float, or none for NaN, the value of a 0/0 ratio such as an error rate without traffic).
      - C(value) is the first sample's value, or none when the query gave no sample.
      - For example V(value is none or value < 0.05). An expression that cannot be evaluated on a
        measurement (say V(value < 0.05) when there is no sample) fails the task, naming it and the values.
      - As for a C(when), ansible-core 2.19 and later evaluate only an expression from a trusted source, one
        written in a playbook, a role, the inventory or C(-e), or a variable holding such a string. One
        that a template assembles (V({{ 'value < ' ~ limit }})) is refused; write V(value < limit) instead.
    type: str
    required: true
  bake:
    description:
      - Seconds to keep measuring. V(0) measures once.
    type: float
    default: 0
  interval:
    description:
      - Seconds between measurements, at least V(0.1).
    type: float
    default: 5
  failure_limit:
    description:
      - Failed measurements tolerated; one more fails the task, at once. Like Argo's C(failureLimit).
    type: int
    default: 0
  timeout:
    description:
      - Seconds each request to Prometheus may take.
    type: float
    default: 5
  validate_certs:
    description:
      - Whether an V(https://) URL's certificate is verified.
    type: bool
    default: true
  headers:
    description:
      - HTTP headers of every request, such as C(Authorization) with a bearer token. Their values are
        treated as secrets (C(no_log)) and never appear in a result or a message.
    type: dict
    default: {}
seealso:
  - module: fleet.rollout.release_analysis
  - name: Prometheus HTTP API, instant queries
    description: The endpoint this task queries.
    link: https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries
"""

EXAMPLES = r"""
- name: Bake the canary app02 for 60 seconds; fail when more than 5% of its responses are 5xx
  fleet.rollout.prometheus_analysis:
    url: http://prometheus.example.org:9090
    query: >-
      sum(rate(haproxy_server_http_responses_total{proxy="app",server="app02",code="5xx"}[1m]))
      / sum(rate(haproxy_server_http_responses_total{proxy="app",server="app02"}[1m]))
    condition: value is none or value < 0.05
    bake: 60
    interval: 10
    failure_limit: 1
  delegate_to: localhost
  run_once: true

- name: Every backend server UP on every balancer, with a token
  fleet.rollout.prometheus_analysis:
    url: https://prometheus.example.org
    headers:
      Authorization: "Bearer {{ prometheus_token }}"
    query: haproxy_server_status{proxy="app",state="UP"}
    condition: result | length > 0 and result | map(attribute='value') | min == 1
    inconclusive: fail
"""

RETURN = r"""
verdict:
  description:
    - V(fail) once more than O(failure_limit) measurements failed, which fails the task at once, with
      these keys; at the end of the bake V(inconclusive) when no measurement had a value, else V(pass).
  returned: always
  type: str
  sample: fail
reason:
  description: The verdict in words, with the condition, the query, the count of measurements and the
    last value (on a V(fail), also the samples).
  returned: always
  type: str
  sample: >-
    condition 'value is none or value < 0.05' false at measurement 4 (1 false, failure_limit 0) of
    'sum(rate(...))' on http://127.0.0.1:9090: value 0.2 (1 sample: {} 0.2)
url:
  description: O(url), a password in it masked.
  returned: always
  type: str
query:
  description: O(query).
  returned: always
  type: str
condition:
  description: O(condition).
  returned: always
  type: str
value:
  description: The last measurement's value (its first sample's), or null.
  returned: always
  type: float
  sample: 0.2
samples:
  description: The last measurement's samples, as C(result) in O(condition).
  returned: always
  type: list
  elements: dict
  sample: [{"metric": {"server": "app02"}, "value": 0.2}]
failures:
  description: How many measurements failed.
  returned: always
  type: int
  sample: 1
measurements:
  description: Every measurement, in order.
  returned: always
  type: list
  elements: dict
  contains:
    at:
      description: When the query was sent, in seconds since the epoch.
      type: float
    value:
      description: Its first sample's value, or null.
      type: float
    ok:
      description: Whether O(condition) held.
      type: bool
elapsed:
  description: Seconds the task spent.
  returned: always
  type: float
"""
