#!/usr/bin/python
# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: release
short_description: Install releases side by side and switch the current one atomically
version_added: 1.0.0
description:
  - Manages release directories under O(root). Each release lives in C(<root>/releases/<version>),
    C(<root>/current) is a relative symlink to the current one, and C(<root>/.release-state.json)
    records the history of switches and install times.
  - With O(state=present) the release is installed if missing, from a tar archive or a directory
    on the managed host (O(src)) or from a URL with a checksum (O(url)), and then made current.
    An installed version is never reinstalled (versions are immutable); remove one first to
    replace it.
  - Releases marked bad are recorded beside their directory as C(<root>/releases/<version>.bad), a JSON
    file with when and why; a file of that name made by hand marks the version bad too.
  - Installing unpacks into a hidden directory beside the target and renames it into place, so a
    half-installed release never appears under C(releases/). Archive members with absolute paths,
    C(..), special files or links that escape the release directory are refused.
  - Before anything is unpacked, every member's header is read. An archive with no members, or only
    directories, is refused, and so is one whose files add up to more than the limit of
    O(max_unpacked_size) and the free space. A refused archive leaves nothing under C(releases/).
  - Switching writes a new symlink and renames it over C(current), so there is never a moment
    without C(current).
  - The previous release is the one that was current before the current one (from the recorded
    history, skipping releases since removed or marked bad), not a guess from modification times.
  - To deploy an archive that is on the controller, copy it to the host first with
    M(ansible.builtin.copy), which only copies when its checksum differs, and pass that path as O(src).
extends_documentation_fragment:
  - fleet.rollout.attributes
attributes:
  diff_mode:
    support: full
    details: The diff shows the current and previous release and the installed releases.
options:
  root:
    description: The directory that holds C(releases/), C(current) and the state file. Created if missing.
    type: path
    required: true
  version:
    description:
      - The release's name, used as its directory name.
      - Made of ASCII letters, digits and C(.), C(_), C(+), C(-), C(~), C(:), C(@) only, at most 128 of
        them. It must not start with C(-) (it would read as an option wherever it is passed to a
        command), C(~) or C(.), contain C(..), nor end with C(.bad) (the suffix of the bad marks).
        Anything else, such as V(-rf) or a non-ASCII letter, is refused, naming the value.
      - Required unless O(state=rolled_back).
    type: str
  state:
    description:
      - V(present) installs O(version) if missing, makes it current and removes releases beyond O(keep).
      - V(staged) only installs O(version) if missing and removes releases beyond O(keep), without
        making it current, so that a later V(present) is a switch of C(current) and nothing more (a
        rollout stages each host's release while the host still serves). Refused for a release marked
        bad, like V(present).
      - V(rolled_back) makes the previous release current again, or O(version) if given. When the
        last switch already was a rollback to the current release, nothing changes.
      - V(absent) removes O(version); the current release cannot be removed.
      - V(marked_bad) records that O(version) is bad. Deploying or rolling back to a release marked
        bad then fails unless O(force=true); the previous release skips releases marked bad.
    type: str
    choices: [present, staged, absent, rolled_back, marked_bad]
    default: present
  src:
    description:
      - A tar archive (optionally compressed) or a directory on the managed host to install the
        release from. The archive's contents become the release directory's contents.
      - Read only when the release is not installed yet.
      - In check mode a missing O(src) is only a warning, since an earlier task may not have put it
        there in check mode.
    type: path
  url:
    description:
      - An http(s) URL of a tar archive to install the release from; needs O(checksum), which is
        verified before anything is unpacked.
    type: str
  checksum:
    description:
      - The archive's checksum as V(sha256:<hex>) or V(sha512:<hex>). Required with O(url); with an
        archive O(src) it is verified too.
    type: str
  validate_certs:
    description: Whether to validate the TLS certificate of an https:// O(url).
    type: bool
    default: true
  keep:
    description:
      - With O(state=present) or O(state=staged), how many of the most recently installed releases
        to keep. The current and the previous release are always kept.
    type: int
    default: 5
  max_unpacked_size:
    description:
      - The most an archive may unpack to (the sum of its files' sizes, read from its headers before
        anything is unpacked), as bytes or a size such as V(500M) or V(2G) (powers of 1024).
      - Whether set or not, the limit is never more than the free space of the filesystem of
        C(<root>/releases) minus a margin that stays free, 10% of that filesystem or 100 MiB, whichever
        is smaller.
      - An archive over the limit is refused, naming it, its size and the limit.
      - Directories given as O(src) are copied without this limit.
    type: bytes
  force:
    description: Deploy or roll back to a release marked bad anyway. The mark stays.
    type: bool
    default: false
  reason:
    description: With O(state=marked_bad), why the release is bad; recorded in the mark.
    type: str
  restart_command:
    description:
      - With O(state=present) or O(state=rolled_back), a command that restarts the service, run once
        C(current) points at the release (see O(restart_when)), so a rollout switches and restarts in
        one task.
      - A string is split like a shell would split it, but no shell runs it; a list is the argv itself.
      - When it exits non-zero the task fails with its rc, stdout and stderr; C(current) stays on the
        new release (roll back with O(state=rolled_back)).
      - Not run in check mode; RV(restarted) then says whether it would run.
    type: raw
  restart_when:
    description:
      - V(changed) runs O(restart_command) only when this task moved C(current).
      - V(always) runs it even when C(current) was already right, e.g. when a process may still run
        another release after a rollout was cut off between its switch and its restart.
    type: str
    choices: [changed, always]
    default: changed
"""

EXAMPLES = r"""
- name: Copy the artifact from the controller (only when its checksum differs)
  ansible.builtin.copy:
    src: "dist/app-{{ app_version }}.tar.gz"
    dest: "/srv/app/artifacts/app-{{ app_version }}.tar.gz"
    mode: "0644"

- name: Install and switch to the release
  fleet.rollout.release:
    root: /srv/app
    version: "{{ app_version }}"
    src: "/srv/app/artifacts/app-{{ app_version }}.tar.gz"
    keep: 5

- name: Install from a URL, verified before unpacking
  fleet.rollout.release:
    root: /srv/app
    version: 1.4.2
    url: https://artifacts.example.com/app-1.4.2.tar.gz
    checksum: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

- name: Switch and restart in one task
  fleet.rollout.release:
    root: /srv/app
    version: "{{ app_version }}"
    src: "/srv/app/artifacts/app-{{ app_version }}.tar.gz"
    restart_command: systemctl restart app

- name: Go back to the release that was current before, and restart on it
  fleet.rollout.release:
    root: /srv/app
    state: rolled_back
    restart_command: [systemctl, restart, app]

- name: Never deploy 1.4.2 again without force
  fleet.rollout.release:
    root: /srv/app
    version: 1.4.2
    state: marked_bad
    reason: health check failed on the canary
"""

RETURN = r"""
current:
  description: The current release after the task, or null when there is none.
  returned: always
  type: str
  sample: 1.4.2
previous:
  description: The release that was current before the current one, or null.
  returned: always
  type: str
  sample: 1.4.1
releases:
  description: The installed releases, oldest install first.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: The release's name.
      type: str
      sample: 1.4.2
    path:
      description: The release's directory.
      type: str
      sample: /srv/app/releases/1.4.2
    installed_at:
      description:
        - When it was installed (ISO 8601, UTC).
        - For a release this module did not install, its directory's modification time.
      type: str
      sample: "2024-05-01T12:00:00.123456+00:00"
    source:
      description: The O(src) or O(url) it was installed from, if known.
      type: str
    checksum:
      description: The O(checksum) given when it was installed, if any.
      type: str
    current:
      description: Whether it is the current release.
      type: bool
    previous:
      description: Whether it is the previous release.
      type: bool
    bad:
      description: Whether it is marked bad.
      type: bool
marked_bad:
  description: The versions marked bad, installed or not, with when and why.
  returned: always
  type: dict
  sample: {"1.4.2": {"marked_at": "2024-05-01T12:00:00.123456+00:00", "reason": "canary failed"}}
installed:
  description: The version this task installed, or null.
  returned: when O(state=present)
  type: str
  sample: 1.4.2
restarted:
  description: Whether O(restart_command) ran (in check mode, whether it would run).
  returned: always
  type: bool
restart:
  description: The restart command's argv, rc, stdout and stderr.
  returned: when O(restart_command) ran
  type: dict
  sample: {"cmd": ["/srv/app/bin/appctl", "restart"], "rc": 0, "stdout": "", "stderr": ""}
removed:
  description: The versions this task removed (O(state=absent), or beyond O(keep)).
  returned: always
  type: list
  elements: str
  sample: ["1.3.0"]
"""

from ansible_collections.fleet.rollout.plugins.module_utils._release_task import TASK

main = TASK.run_as_module


if __name__ == "__main__":
    main()
