# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to this collection: not a public API, may change without notice.
"""Values a journal file can hold: plain JSON types, and messages cut to a length."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

MSG_LIMIT = 2000


def plain(value: Any) -> Any:
    """A JSON value made of plain types (templated values may be subclasses, or odd types)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    for kind in (bool, int, float, str):  # bool first: it is an int
        if isinstance(value, kind):
            return kind(value)
    return None if value is None else str(value)


def short(message: Any) -> str | None:
    """A message for the journal: text, at most MSG_LIMIT characters."""
    if message is None or message == "":
        return None
    text = message if isinstance(message, str) else json.dumps(plain(message))
    return text if len(text) <= MSG_LIMIT else text[: MSG_LIMIT - 3] + "..."
