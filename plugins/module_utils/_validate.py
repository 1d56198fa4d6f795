# Private to this collection: not a public API, may change without notice.
"""Names that end up inside a runtime-API command or a shell line, checked before any I/O.

HAProxy itself accepts only letters, digits and ``-_.:`` in proxy and server names, so anything else
(whitespace, ``;`` that would chain a second command, ``#``, control characters, ``/`` that would move the
``backend/server`` split) can only be a mistake or an injection, and is refused with the value named.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError

HAPROXY_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
ALLOWED_CHARACTERS = "letters, digits, '-', '_', '.' and ':'"


def first_control_character(text: str) -> str | None:
    """The first control character in ``text`` (a newline would end a runtime-API command), or None."""
    return next((char for char in text if ord(char) < 32 or ord(char) == 127), None)


def split_host_port(text: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6-address]:port`` with a port from 1 to 65535 into its parts; None otherwise."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def describe_character(char: str) -> str:
    """Say which character is wrong in a way that stays readable when it is invisible."""
    if char.isspace():
        return f"whitespace ({char!r})"
    if ord(char) < 32 or ord(char) == 127:
        return f"a control character ({char!r})"
    return repr(char)


def validate_name(kind: str, value: t.Any) -> str:
    """Return ``value`` if it is a valid HAProxy name, else raise InvalidInputError naming it.

    ``kind`` says what the value is ("server name", "backend name") for the message.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{kind} must be a string, got {value!r}", invalid_name=repr(value))
    if not value:
        raise InvalidInputError(f"{kind} must not be empty", invalid_name=value)
    if HAPROXY_NAME.fullmatch(value):
        return value
    bad = next(char for char in value if not HAPROXY_NAME.fullmatch(char))
    raise InvalidInputError(
        f"{kind} {value!r} is refused: it contains {describe_character(bad)}; "
        f"HAProxy names allow only {ALLOWED_CHARACTERS}",
        invalid_name=value,
    )


def validate_names(kind: str, values: t.Iterable[t.Any]) -> list[str]:
    """validate_name over a list, in order, so the first bad value is the one reported."""
    return [validate_name(kind, value) for value in values]


def validate_file_name(
    kind: str,
    value: t.Any,
    max_length: int,
    *,
    allowed: t.Pattern[str] | None = None,
    forbidden: str = "",
    forbidden_suffixes: t.Sequence[str] = (),
    forbidden_first: str = ".",
    hint: str = "",
    field: str = "invalid_name",
) -> str:
    """Return ``value`` if it is safe as one file name, else raise InvalidInputError listing every problem.

    Control characters, whitespace, ``..``, a leading ``.`` and names over ``max_length`` are always
    refused; beyond that, a character is refused when it is not ``allowed`` or is in ``forbidden``, and a
    first character when it is in ``forbidden_first``.
    """
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{kind} must be a non-empty string, got {value!r}", **{field: value})
    problems = []
    if first_control_character(value) is not None:
        problems.append("control characters")
    if any(char.isspace() for char in value):
        problems.append("whitespace")
    # Invisible ones too (a zero-width space is neither printable nor whitespace): repr() shows them.
    others = [char for char in value if not char.isspace() and first_control_character(char) is None]
    refused = {char for char in others if char in forbidden or (allowed and not allowed.fullmatch(char))}
    problems.extend(repr(char) for char in sorted(refused))
    if ".." in value:
        problems.append("'..'")
    if value[0] in "." + forbidden_first:
        problems.append(f"a leading {value[0]!r}")
    problems.extend(f"the suffix {suffix!r}" for suffix in forbidden_suffixes if value.endswith(suffix))
    if len(value) > max_length:
        problems.append(f"more than {max_length} characters")
    if problems:
        raise InvalidInputError(
            f"invalid {kind} {value!r}: it contains {', '.join(problems)}{hint}", **{field: value}
        )
    return value


# Lock names and run ids: both end up in file names and messages, so both get the same plain alphabet.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")
PLAIN_NAME_HINT = "; only ASCII letters, digits, '-', '_' and '.' are allowed, not as the first character '.'"


def validate_plain_name(kind: str, value: t.Any, max_length: int, field: str) -> str:
    """Return ``value`` if it is made of ASCII letters, digits, ``-_.`` only (a lock name, a run id)."""
    return validate_file_name(kind, value, max_length, allowed=PLAIN_NAME, hint=PLAIN_NAME_HINT, field=field)


# Release versions become directory names, symlink targets and words of restart commands. Beside ``._+-``,
# ``~``, ``:`` and ``@`` stay allowed: versions in the Debian (1:2.0~rc1) and vcs (app@sha) styles were
# accepted before and are harmless inside a word; only a leading ``~`` could be expanded by a shell.
VERSION_PATTERN = re.compile(r"[A-Za-z0-9._+~:@-]+")
VERSION_MAX_LENGTH = 128
BAD_SUFFIX = ".bad"  # releases/<version>.bad marks a version bad
VERSION_HINT = (
    "; a release version is made of ASCII letters, digits and '.', '_', '+', '-', '~', ':', '@' only, "
    f"does not start with '-', '~' or '.' and does not end with {BAD_SUFFIX!r}"
)


def validate_version(version: t.Any) -> str:
    """Return ``version`` if it is safe as one directory name and one command word, else raise naming it.

    A leading ``-`` would read as an option to any command it is passed to, a leading ``~`` as a home
    directory to a shell; a leading ``.`` hides it
    (dot-names are work in progress); a version ending in ``.bad`` would be taken for another's bad mark.
    """
    return validate_file_name(
        "release version",
        version,
        VERSION_MAX_LENGTH,
        allowed=VERSION_PATTERN,
        forbidden_suffixes=(BAD_SUFFIX,),
        forbidden_first="-~",
        hint=VERSION_HINT,
        field="version",
    )
