# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ansible-core loads the callback plugins beside a playbook without them being enabled: this makes the
deploy and rollback playbooks give their rollout lock back however a run ends (fleet.rollout.lock_guard)."""

from __future__ import annotations

from ansible_collections.fleet.rollout.plugins.callback.lock_guard import CallbackModule

__all__ = ["CallbackModule"]
