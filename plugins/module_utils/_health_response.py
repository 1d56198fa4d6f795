# Private to this collection: not a public API, may change without notice.
"""What a healthy HTTP answer looks like (status, body_regex, json_query/json_expect), and how an answer
is quoted in a result."""

from __future__ import annotations

import json
import re
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._http import HttpResponse

EXCERPT_CHARS = 200


def excerpt_of(body: bytes) -> str:
    """The start of a body as one line of text, short enough for a failure message."""
    text = " ".join(body[: EXCERPT_CHARS * 4].decode("utf-8", "replace").split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 3] + "..."


def same_json_value(got: t.Any, want: t.Any) -> bool:
    # Python says True == 1; a health check that expects true must not pass on 1.
    if isinstance(got, bool) or isinstance(want, bool):
        return isinstance(got, bool) and isinstance(want, bool) and got is want
    return bool(got == want)


class ResponseChecks:
    """The compiled expectations for an HTTP answer: status, body_regex, json_query/json_expect."""

    def __init__(
        self,
        status: tuple[int, ...],
        body_regex: re.Pattern[str] | None,
        json_query: t.Any,
        json_expect: t.Any,
    ) -> None:
        self.status = status
        self.body_regex = body_regex
        self.json_query = json_query
        self.json_expect = json_expect

    def mismatch(self, response: HttpResponse) -> str | None:
        """Why this response is not healthy, or None when it is."""
        if response.status not in self.status:
            return f"status {response.status} is not one of {list(self.status)}"
        text = response.body.decode("utf-8", "replace")
        if self.body_regex is not None and not self.body_regex.search(text):
            return f"body does not match {self.body_regex.pattern!r}"
        if self.json_query is not None:
            try:
                document = json.loads(text)
            except ValueError as exc:
                return f"body is not JSON ({exc})"
            got = self.json_query.search(document)
            if not same_json_value(got, self.json_expect):
                return (
                    f"json_query {self.json_query.expression!r} gave {got!r}, expected {self.json_expect!r}"
                )
        return None
