# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The author and the attributes every module of this collection documents alike."""

from __future__ import annotations


class ModuleDocFragment:
    # Every module predicts in check mode and runs on any POSIX host; diff support is each module's own.
    DOCUMENTATION = r"""
author:
  - fleet.rollout developers (!UNKNOWN)
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description:
      Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
"""

    # A module that only reads.
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    details: This action does not modify state; it runs in full in check mode.
  diff_mode:
    support: N/A
    details: This action does not modify state.
"""
