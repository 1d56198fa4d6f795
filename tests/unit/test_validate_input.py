"""One validator per kind of input: release versions (wherever a version enters), lock names and run ids."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils import _validate
from ansible_collections.fleet.rollout.plugins.module_utils._artifact import ReleaseSource
from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError
from ansible_collections.fleet.rollout.plugins.module_utils._lock import LockManager
from ansible_collections.fleet.rollout.plugins.module_utils._release import ReleaseManager, validate_version

OUTSIDE_THE_ALPHABET = ["vé1", "v1\u200b", "1.0$", "a*b", "1.0!", "v`id`", "a&b", "1'2", "a=b"]


@pytest.mark.parametrize(
    ("version", "why"),
    [
        ("-rf", "a leading '-'"),
        ("--help", "a leading '-'"),
        ("~root", "a leading '~'"),
        (".", "a leading '.'"),
        ("..", "'..'"),
        ("vé1", "'é'"),
        ("1.0$", "'$'"),
    ],
)
def test_a_version_outside_the_safe_alphabet_is_refused_naming_it(version: str, why: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_version(version)
    assert caught.value.message.startswith(f"invalid release version {version!r}: it contains {why}")
    assert "ASCII letters, digits and '.', '_', '+', '-'" in caught.value.message
    assert caught.value.details["version"] == version


@pytest.mark.parametrize("version", OUTSIDE_THE_ALPHABET)
def test_only_ascii_letters_digits_and_a_few_marks_are_allowed(version: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid release version"):
        validate_version(version)


@pytest.mark.parametrize("version", ["1.2.3", "v1-rc.2", "1.0.0+build.7", "2024_05_01", "a-", "1-"])
def test_versions_of_the_alphabet_are_fine(version: str) -> None:
    assert validate_version(version) == version


ENTRY_POINTS: list[tuple[str, t.Callable[[ReleaseManager, str], object]]] = [
    ("present", lambda m, v: m.deploy(v, ReleaseSource(src="/nowhere.tar.gz"))),
    ("staged", lambda m, v: m.deploy(v, ReleaseSource(src="/nowhere.tar.gz"), make_current=False)),
    ("rolled_back", lambda m, v: m.rollback(v)),
    ("marked_bad", lambda m, v: m.mark_bad(v)),
    ("absent", lambda m, v: m.remove(v)),
]


@pytest.mark.parametrize("version", ["-rf", "vé1"])
@pytest.mark.parametrize(("state", "call"), ENTRY_POINTS, ids=[state for state, _ in ENTRY_POINTS])
def test_every_state_refuses_a_bad_version_before_touching_anything(
    tmp_path: Path, version: str, state: str, call: t.Callable[[ReleaseManager, str], object]
) -> None:
    root = tmp_path / "app"
    with pytest.raises(InvalidInputError, match=f"invalid release version {version!r}"):
        call(ReleaseManager(str(root)), version)
    assert not root.exists()


@pytest.mark.parametrize("run_id", ["a/b", "../x", "run 1", "run;1", "ré", ".hidden", "a\\b"])
def test_run_ids_are_validated_like_lock_names(tmp_path: Path, run_id: str) -> None:
    manager = LockManager(str(tmp_path / "locks"), "web")
    for call in (manager.acquire, manager.release):
        with pytest.raises(InvalidInputError) as caught:
            call(run_id)
        assert caught.value.message.startswith(f"invalid run_id {run_id!r}: it contains ")
        assert "only ASCII letters, digits, '-', '_' and '.' are allowed" in caught.value.message
        assert caught.value.details["run_id"] == run_id
    assert not (tmp_path / "locks").exists()


@pytest.mark.parametrize("run_id", ["20260509T073525Z-4242", "k3j5h2g7f8d9s0a1", "run-a", "ci_build.77"])
def test_usual_run_ids_are_fine(tmp_path: Path, run_id: str) -> None:
    assert LockManager(str(tmp_path), "web").acquire(run_id)["lock"]["run_id"] == run_id


def test_lock_names_and_run_ids_share_one_validator() -> None:
    for kind, field in (("lock name", "name"), ("run_id", "run_id")):
        with pytest.raises(InvalidInputError) as caught:
            _validate.validate_plain_name(kind, "a/b", 10, field)
        assert caught.value.message.startswith(f"invalid {kind} 'a/b': it contains '/'")
        assert caught.value.details == {field: "a/b"}
