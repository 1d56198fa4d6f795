#!/usr/bin/python
# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_lock
short_description: Take or release the rollout lock of a target, so that two rollouts never overlap
version_added: 1.0.0
description:
  - A lock per target (O(name)) held as the file C(<directory>/<name>.lock) on the host the task runs
    on. Run the task on one host for every rollout of that target, usually the controller (the task
    keywords C(delegate_to=localhost) and C(run_once=true)); there the action plugin runs it inside
    the controller process, without shipping a module.
  - The lock records its owner (O(run_id), user, host, process id), when it was acquired and when it
    expires (O(ttl) seconds later).
  - O(state=acquired) creates the lock. A lock already held by the same O(run_id) is left as it is
    (no change, its expiry is not extended); an expired one of the same O(run_id) is renewed.
  - A lock held by another run that has not expired fails the task at once, naming the holder, since
    when it holds the lock and when it expires. A lock past its expiry is taken over, with a warning
    naming the previous holder. O(force=true) takes it from a live holder too.
  - O(state=released) removes the lock. Only the run that holds it may release it (another O(run_id)
    fails, naming the holder) unless O(force=true), which removes whoever holds it and says whom.
    Releasing a lock that is not held changes nothing.
  - The lock appears complete or not at all (a fully written file is hard-linked into place), so of
    several rollouts acquiring at the same moment exactly one wins. Every read-decide-change step holds
    an exclusive C(flock) on C(<directory>/.<name>.guard), so of two runs taking over the same expired
    lock exactly one wins as well; the other fails naming the winner. The kernel drops that C(flock)
    when a process dies.
  - On a filesystem without C(flock) (some network mounts) the lock is removed by renaming it to a
    unique name and checking that it was the lock that was judged expired, so a free lock still has one
    winner; a takeover racing with yet another acquisition is then not fully protected.
  - A rollout that is killed (for example by Ctrl-C) keeps its lock until the lock expires, then the
    next rollout takes it over. Choose O(ttl) above the longest rollout.
  - With O(bind_to_controller=true) the lock also ends with the C(ansible-playbook) process that took it;
    when that process no longer runs (killed with SIGKILL, crashed, its machine rebooted), the next run on
    the same host (the same host name) takes the lock over at once, with a warning naming the dead holder
    and RV(takeover=holder_gone), instead of waiting for the TTL. A holder on another host keeps its lock
    until its TTL. On Linux the record also holds the process's start time and the boot id, so a reused
    process id is not mistaken for the holder; without C(/proc) the process id alone is checked.
extends_documentation_fragment:
  - fleet.rollout.attributes
attributes:
  check_mode:
    details:
      - Reads the lock and predicts; creates neither the directory nor any file.
      - A lock held by another run fails in check mode too.
  diff_mode:
    support: full
    details: The owner record before and after.
options:
  name:
    description:
      - The target the lock is for, for example the inventory group being rolled out.
      - Only ASCII letters, digits, V(-), V(_) and V(.) (not as the first character), at most 100 characters;
        the lock file is C(<directory>/<name>.lock).
    type: str
    required: true
  state:
    description:
      - V(acquired) takes the lock for O(run_id); V(released) gives it up.
    type: str
    default: acquired
    choices: [acquired, released]
  run_id:
    description:
      - Identifies one run of the playbook; the same value must be passed to acquire and to release.
      - Generate it once per run, for example with M(ansible.builtin.set_fact) on localhost (see the
        examples).
    type: str
    required: true
  ttl:
    description:
      - Seconds after acquiring when the lock expires and another run may take it over.
      - Only used with O(state=acquired). Re-acquiring a live lock with the same O(run_id) does not extend it.
    type: int
    default: 3600
  force:
    description:
      - With O(state=acquired), take the lock even from a live holder of another run.
      - With O(state=released), remove the lock whoever holds it.
      - Either way the result names the previous holder in RV(previous_holder) and a warning, and
        RV(takeover) is V(forced). The deploy playbook sets it from C(deploy_lock_force), and the journal
        of C(fleet.rollout.rollout_journal) records the holder that was broken.
    type: bool
    default: false
  directory:
    description:
      - The directory of the locks on the host where the task runs, created if missing (mode 0755).
        Must be absolute (after C(~) expansion).
      - Every rollout of the same target must use the same host and directory.
    type: path
    default: ~/.ansible/fleet-rollout-locks
  bind_to_controller:
    description:
      - Tie the lock to the C(ansible-playbook) process of this run, as well as to its TTL, for a lock
        taken and released in the same run (the deploy playbook's); once that process is gone, a later
        run on the same host takes the lock over at once.
      - Only when the task runs inside the controller (the action plugin, with a local connection, no
        C(become), no task C(environment), the controller's own Python); as a module it binds nothing
        and the TTL alone applies.
      - Leave it V(false) for a lock that outlives the C(ansible-playbook) run that takes it.
      - Only used with O(state=acquired).
    type: bool
    default: false
    version_added: 1.1.0
  controller:
    description:
      - The host name of the controller the task runs for, kept in the owner record and named in
        messages; the action plugin sets it to the controller's host name when it is not given.
      - A lock held by the same O(run_id) counts as this run's only when it comes from the same
        controller, so a lock on a target (a lease) taken under the same O(run_id) from another
        controller is another run's.
      - ASCII letters, digits, V(-), V(_) and V(.) only.
    type: str
    version_added: 1.1.0
  take_over_from:
    description:
      - With O(state=acquired), run ids whose live lock this run takes over at once, with a warning and
        RV(takeover=handed_over). These are the runs that this run took the rollout over from (a dead
        holder's, an expired or a forced rollout lock), whose leases on the targets nothing else would
        free before their TTL.
    type: list
    elements: str
    default: []
    version_added: 1.1.0
notes:
  - The lock directory must be on a local filesystem or one that supports C(flock) and hard links across
    all hosts that use it (NFSv4 does), to be safe against every race.
seealso:
  - module: fleet.rollout.lb_member
  - module: fleet.rollout.release
"""

EXAMPLES = r"""
# First play: a run id made once (no facts needed), then the lock, on the controller.
- name: Make this run's id
  ansible.builtin.set_fact:
    rollout_run_id: >-
      {{ lookup('ansible.builtin.password', '/dev/null', chars=['ascii_lowercase', 'digits'], length=16) }}
  delegate_to: localhost
  delegate_facts: true
  run_once: true

- name: Take the rollout lock of the app group
  fleet.rollout.rollout_lock:
    name: app
    run_id: "{{ hostvars['localhost'].rollout_run_id }}"
    ttl: 7200
    directory: /var/lib/fleet-rollout/locks
  delegate_to: localhost
  run_once: true

# Last play (hosts: localhost): give it back.
- name: Release the rollout lock of the app group
  fleet.rollout.rollout_lock:
    name: app
    state: released
    run_id: "{{ rollout_run_id }}"
    directory: /var/lib/fleet-rollout/locks

- name: Break a lock left by a run that is known to be dead
  fleet.rollout.rollout_lock:
    name: app
    state: released
    run_id: operator-cleanup
    force: true
    directory: /var/lib/fleet-rollout/locks
"""

RETURN = r"""
lock:
  description: The owner record of the lock now; null once released (or when it was not held).
  returned: always
  type: dict
  contains:
    name:
      description: The lock's O(name).
      type: str
    run_id:
      description: The run that holds the lock.
      type: str
    user:
      description: The user that acquired it, on the host that holds the lock directory.
      type: str
    host:
      description: The host name of the machine where the lock was taken.
      type: str
    pid:
      description: The process that took the lock (an Ansible worker or module process; for information only).
      type: int
    acquired_at:
      description: When the lock was acquired, ISO 8601 in UTC.
      type: str
    expires_at:
      description: When the lock expires, ISO 8601 in UTC.
      type: str
    ttl:
      description: The lock's time to live in seconds.
      type: int
    holder_pid:
      description:
        - The C(ansible-playbook) process whose end frees the lock (O(bind_to_controller)); null when only
          the TTL does.
      type: int
    holder_started:
      description:
        - The boot id and start time (clock ticks since boot) of RV(lock.holder_pid) on Linux, which tell
          it from a later process with the same id; null without C(/proc) or without a holder.
      type: str
  sample:
    name: app
    run_id: k3v9x0q2m1c8d7ze
    user: deploy
    host: ctl01
    pid: 41234
    acquired_at: "2025-01-31T10:00:00+00:00"
    expires_at: "2025-01-31T12:00:00+00:00"
    ttl: 7200
    holder_pid: 41200
    holder_started: "0b1f6f4e-2c55-4b3e-9a0e-6c1d2f3a4b5c 8812345"
previous_holder:
  description:
    - The owner record of the lock of another run that was taken over (expired), broken with O(force), or
      released with O(force); null otherwise.
    - For a lock file that was not a lock record, a dict with the key C(unreadable) saying why.
  returned: always
  type: dict
  sample:
    name: app
    run_id: 0f3c2b1a9e8d7c6b
    user: alice
    host: ctl02
    pid: 977
    acquired_at: "2025-01-31T07:00:00+00:00"
    expires_at: "2025-01-31T08:00:00+00:00"
    ttl: 3600
taken_over:
  description: Whether the lock was taken from another run (expired, its holder gone, or live with O(force))
    when acquiring.
  returned: always
  type: bool
  sample: false
takeover:
  description:
    - Why the lock of RV(previous_holder) was taken or broken; null when none was.
    - V(expired) (past its TTL), V(holder_gone) (its C(ansible-playbook) process no longer runs on this
      host, see O(bind_to_controller)), V(handed_over) (its run is in O(take_over_from)), or V(forced)
      (O(force), also when releasing).
  returned: always
  type: str
  sample: holder_gone
  version_added: 1.1.0
path:
  description: The lock file.
  returned: always
  type: str
  sample: /var/lib/fleet-rollout/locks/app.lock
msg:
  description: What was done, or why it failed.
  returned: always
  type: str
  sample: acquired rollout lock 'app' for run k3v9x0q2m1c8d7ze
holder:
  description: The owner record of the lock that made the task fail (see RV(lock) for its keys).
  returned: failure, when the lock is held by another run
  type: dict
"""

from ansible_collections.fleet.rollout.plugins.module_utils._lock_task import TASK

main = TASK.run_as_module


if __name__ == "__main__":
    main()
