"""What a rollout lock says when it cannot be had: each thing once, for a corrupt file as for a holder."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._errors import ConflictError
from ansible_collections.fleet.rollout.plugins.module_utils._lock import LockManager

CORRUPT_FILES = [
    pytest.param(b"not json", "Expecting value", id="not-json"),
    pytest.param(b"", "Expecting value", id="empty"),
    pytest.param(b'{"format": 1}', "name is missing or not a string", id="no-fields"),
    pytest.param(b"\xff\xfe", "codec can't decode", id="not-utf8"),
]


def refusal(call: t.Callable[[], object]) -> str:
    with pytest.raises(ConflictError) as caught:
        call()
    return caught.value.message


@pytest.mark.parametrize(("content", "problem"), CORRUPT_FILES)
def test_a_corrupt_lock_file_is_reported_once_with_one_way_out(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    (tmp_path / "web.lock").write_bytes(content)
    manager = LockManager(str(tmp_path), "web")
    for call, consequence in (
        (lambda: manager.acquire("run-a"), "run run-a cannot acquire it"),
        (lambda: manager.release("run-a"), "only its holder can release it, not run run-a"),
    ):
        message = refusal(call)
        assert message.startswith(
            f"rollout lock 'web': {tmp_path / 'web.lock'} is not a lock record of "
            f"fleet.rollout.rollout_lock: "
        )
        assert problem in message
        assert consequence in message
        assert message.endswith("; remove the file or set force to break it")
        assert message.count("force") == 1
        assert message.count(str(tmp_path / "web.lock")) == 1
    assert (tmp_path / "web.lock").read_bytes() == content  # refused: the file is left for a human


def test_a_live_holder_is_named_and_force_offered_once(tmp_path: Path) -> None:
    LockManager(str(tmp_path), "web").acquire("run-a")
    manager = LockManager(str(tmp_path), "web")
    acquiring = refusal(lambda: manager.acquire("run-b"))
    assert "is held by run run-a" in acquiring
    assert acquiring.endswith("; run run-b cannot acquire it; set force to break it if that run is gone")
    releasing = refusal(lambda: manager.release("run-b"))
    assert releasing.endswith("may have been taken over); set force to break it")
    assert acquiring.count("force") == releasing.count("force") == 1
