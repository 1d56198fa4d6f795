#!/usr/bin/python
# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: health_check
short_description: Wait until an HTTP(S) endpoint or a TCP port is healthy, and stays healthy
version_added: 1.0.0
description:
  - Probes an HTTP(S) URL or a TCP port every O(interval) seconds until it has answered healthily
    O(successes) times in a row and has stayed healthy for O(stable_for) seconds, or fails when
    O(deadline) passes first.
  - It fails fast, before O(deadline), once O(failure_threshold) attempts in a row were definitive
    failures, failures that waiting will not cure. Each of these is one - an answer whose status is in
    neither O(status) nor O(warming_status) (a V(500), a V(404)); an answer whose status is in O(status)
    but whose body fails O(body_regex) or O(json_query) (the service answered, wrongly); no answer
    (connection refused or reset, host unreachable) once the target has answered in this check (it
    answered, then died) or once O(startup_grace) has passed; a timed-out attempt once O(startup_grace)
    has passed.
  - Never definitive are an answer whose status is in O(warming_status) (warming up), no answer before
    the target's first answer within O(startup_grace) (still starting), and a timeout within
    O(startup_grace) (a slow start). Any attempt that is not a definitive failure, healthy or not, ends
    the run of failures.
  - A service that reports its warm-up inside a healthy status (say V(200) with a body that says it is
    starting) is a definitive failure for O(body_regex) or O(json_query); make it answer a status in
    O(warming_status) while it warms up, or raise O(failure_threshold).
  - An HTTP answer is healthy when its status is one of O(status), its body matches O(body_regex)
    and O(json_query) gives O(json_expect), for each of these that is set. A TCP check only connects.
  - Redirects are followed; the status compared is that of the final answer. Only the first MiB of a
    body is read.
  - The probe only reads, so it also runs in check mode. It never changes anything.
  - On failure the message carries the last observation (status, error, body excerpt), and says whether
    the check failed fast or at the deadline.
requirements:
  - jmespath (on the host that runs the check, only when O(json_query) is used)
extends_documentation_fragment:
  - fleet.rollout.attributes
  - fleet.rollout.attributes.read_only
options:
  url:
    description:
      - The http:// or https:// URL to probe.
      - Exactly one of O(url) and O(tcp) is required.
    type: str
  tcp:
    description:
      - V(host:port) (or V([address]:port) for IPv6) to connect to; the connection is closed at once.
    type: str
  method:
    description: The HTTP method.
    type: str
    default: GET
  headers:
    description: HTTP headers to send.
    type: dict
  status:
    description: The HTTP status codes that count as healthy.
    type: list
    elements: int
    default: [200]
  body_regex:
    description: A Python regular expression the body must match (searched, not anchored).
    type: str
  json_query:
    description:
      - A JMESPath expression applied to the body parsed as JSON; it must give O(json_expect).
      - Needs the Python library jmespath where the check runs.
    type: str
  json_expect:
    description:
      - The value O(json_query) must give. Compared as JSON values, so types matter
        (V(true) is not V(1), V("3") is not V(3)).
    type: raw
  validate_certs:
    description: Whether to validate the server's TLS certificate for https:// URLs.
    type: bool
    default: true
  ca_path:
    description: A PEM file of CA certificates to validate the server's certificate against.
    type: path
  successes:
    description: How many healthy answers in a row are needed.
    type: int
    default: 1
  stable_for:
    description:
      - Seconds the target must stay healthy after its first healthy answer in a row, like
        Kubernetes' minReadySeconds. Any unhealthy answer in that time starts the count again.
      - Must be below O(deadline).
    type: float
    default: 0
  interval:
    description: Seconds to wait between attempts.
    type: float
    default: 0.5
  timeout:
    description:
      - Seconds one attempt may take, all of it (connect, status, headers and the whole body, however
        slowly it arrives); never beyond what is left of O(deadline).
      - An answer that completes within half a second after that time still counts, so that a busy
        checking host does not turn the last answer into a timeout.
    type: float
    default: 5
  deadline:
    description:
      - Seconds the whole check may take, whatever the server does. No attempt starts after it, and an
        attempt still running when it passes (an answer still arriving) is cut off and fails the check.
    type: float
    default: 60
  failure_threshold:
    description:
      - How many definitive failures in a row (see the description) fail the check at once, without
        waiting for O(deadline).
      - V(0) turns this off. The check then only fails at O(deadline).
      - With the default O(interval) of V(0.5), a service whose health page answers V(500) fails in
        about 1 s instead of O(deadline).
    type: int
    default: 3
  warming_status:
    description:
      - HTTP status codes that mean the service is warming up. Such an answer is not healthy, but it
        never counts towards O(failure_threshold), so a warm-up that takes too long fails only at O(deadline).
      - A code that is also in O(status) is healthy.
      - Only for O(url) checks.
    type: list
    elements: int
    default: [503]
  startup_grace:
    description:
      - Seconds from the start of the check during which no answer (connection refused, timed out) is
        not a definitive failure while the target has not answered yet. After it, every attempt without
        an answer counts towards O(failure_threshold).
      - Once the target has answered (any HTTP status, or a TCP connection), a refused connection counts
        at once, even within O(startup_grace). A timeout still only counts after O(startup_grace).
    type: float
    default: 10
"""

EXAMPLES = r"""
- name: Wait until the app answers 200 three times in a row and stays up for 5 seconds
  fleet.rollout.health_check:
    url: http://127.0.0.1:8080/health
    successes: 3
    stable_for: 5
    deadline: 60

- name: Check the JSON health document
  fleet.rollout.health_check:
    url: https://app.example.com/health
    ca_path: /etc/ssl/internal-ca.pem
    json_query: checks.database
    json_expect: up

- name: Give a release 20 seconds to start, fail it at once if its health page answers an error
  fleet.rollout.health_check:
    url: http://127.0.0.1:8080/health
    interval: 0.1
    failure_threshold: 3
    warming_status: [503]
    startup_grace: 20
    deadline: 120

- name: Wait until the port accepts connections
  fleet.rollout.health_check:
    tcp: 127.0.0.1:5432
    interval: 1
    deadline: 30
"""

RETURN = r"""
attempts:
  description: How many attempts were made.
  returned: always
  type: int
  sample: 4
seconds_to_healthy:
  description: Seconds from the start of the check until it was healthy (and stable).
  returned: success
  type: float
  sample: 1.52
status:
  description: The HTTP status of the last answer; null for TCP checks or when there was no answer.
  returned: always
  type: int
  sample: 200
excerpt:
  description: The start of the last body, on one line, at most 200 characters.
  returned: always
  type: str
  sample: '{"status": "ok"}'
observations:
  description: The last attempts (at most 10), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    attempt:
      description: The attempt's number, from 1.
      type: int
    at:
      description: Seconds from the start of the check when the attempt began.
      type: float
    duration:
      description: Seconds the attempt took.
      type: float
    healthy:
      description: Whether this attempt was healthy.
      type: bool
    status:
      description: The HTTP status, if there was an answer.
      type: int
    error:
      description: Why the attempt was not healthy (connection error or failed expectation).
      type: str
    excerpt:
      description: The start of the body.
      type: str
    definitive:
      description: Whether this attempt was a definitive failure, counted towards O(failure_threshold).
      type: bool
target:
  description: What was probed, the O(url) or V(tcp://host:port).
  returned: failure
  type: str
  sample: http://127.0.0.1:8080/health
elapsed:
  description: Seconds the check ran before giving up.
  returned: failure
  type: float
  sample: 60.01
error:
  description: Why the last attempt was not healthy.
  returned: failure
  type: str
  sample: status 503 is not one of [200]
failed_fast:
  description:
    - Whether the check failed before O(deadline) because of O(failure_threshold) definitive failures in
      a row; false when it failed at O(deadline).
    - Only for failures of the probe, not for invalid options.
  returned: failure
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fleet.rollout.plugins.module_utils._health import HAS_JMESPATH, JMESPATH_IMPORT_ERROR
from ansible_collections.fleet.rollout.plugins.module_utils._health_task import TASK


def require_jmespath(module: AnsibleModule) -> None:
    if module.params["json_query"] is not None and not HAS_JMESPATH:
        module.fail_json(msg=missing_required_lib("jmespath"), exception=JMESPATH_IMPORT_ERROR)


def main() -> None:
    TASK.run_as_module(needs=require_jmespath)


if __name__ == "__main__":
    main()
