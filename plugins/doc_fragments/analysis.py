# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The option both release analyses (release_analysis, prometheus_analysis) share."""

from __future__ import annotations


class ModuleDocFragment:
    # Each module's description says when its verdict is inconclusive.
    DOCUMENTATION = r"""
options:
  inconclusive:
    description:
      - What an V(inconclusive) verdict does, one whose bake ended without the evidence for another.
      - V(pass) ends the task quietly, V(warn) with a warning, V(fail) fails it.
    type: str
    choices: [pass, warn, fail]
    default: warn
"""
