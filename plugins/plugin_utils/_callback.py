# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to this collection: not a public API, may change without notice.
"""What every callback plugin of fleet.rollout declares to ansible-core, said once."""

from __future__ import annotations

from typing import Any

from ansible.plugins.callback import CallbackBase


class RolloutCallback(CallbackBase):
    """A callback of this collection, on version 2.0 of ansible-core's callback API. A subclass gives its
    short name, its CALLBACK_TYPE and whether it must be enabled in its class statement:
    ``class CallbackModule(RolloutCallback, name="lock_guard", kind="aggregate", needs_enabled=False)``."""

    CALLBACK_VERSION = 2.0

    def __init_subclass__(cls, *, name: str, kind: str, needs_enabled: bool, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.CALLBACK_NAME = f"fleet.rollout.{name}"
        cls.CALLBACK_TYPE = kind
        cls.CALLBACK_NEEDS_ENABLED = needs_enabled
