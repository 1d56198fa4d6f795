# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The options of every module that talks to HAProxy's runtime API."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  socket:
    description:
      - HAProxy runtime API of each balancer, a unix socket path or V(tcp://host:port).
    type: list
    elements: str
    required: true
  timeout:
    description:
      - Connect and read timeout, in seconds, of each runtime API command.
    type: float
    default: 5
"""
