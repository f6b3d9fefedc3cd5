"""Keeping secrets out of every report, log line and bulletin entry.

Three nets, all applied to *structured* data before anything is serialized:

1. ``Secret``: a value the harness itself holds (a declared secret such as the LiteLLM master
   key) is a ``Secret``, which renders as ``***`` through ``str``, ``repr`` and ``format``;
   only ``reveal()`` gives the value, at the one place that sends it (a request header).
2. Known values: values read from a declared secret variable, or from a variable or key whose
   *name* is credential-shaped (a ``_``/``-`` separated part that is KEY, TOKEN, SECRET,
   PASSWORD, ...), are registered and masked wherever they appear, also when a line break
   (with a continuation backslash or an indentation) splits them or JSON escaped them. Short
   values (< 8 characters) and boolean- or number-like values are never registered: they
   would mask ``false`` everywhere, or the middle of paths.
3. Shapes: credentials that nobody declared are masked by form: URL userinfo
   (``http://user:pass@host``), ``Authorization: Basic|Bearer ...``, ``--x-api-key VALUE``,
   credential query parameters (``?auth=``, ``&token=``), ``"api_key": "..."`` /
   ``master_key: ...`` / ``NAME_KEY=value with spaces``, and well-known key prefixes.

Every Result redacts its own fields when it is built (``conformance.results``), and each sink
calls ``redact`` again on what it writes.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
MIN_SECRET_LENGTH = 8
_NOT_SECRETS = frozenset(
    {"false", "true", "none", "null", "nil", "yes", "no", "on", "off", "enabled", "disabled", "default", "unset"}
)
_KEYWORD = r"(?:KEY|KEYS|APIKEY|TOKEN|TOKENS|SECRET|SECRETS|PASSWORD|PASSWD|PASS|PWD|CREDENTIAL|CREDENTIALS|AUTH)"
# A name with a part (between "_", "-" or ".") that is exactly a credential word:
# HF_TOKEN, OPENAI_API_KEY, api-key, master_key; not TOKENIZERS_PARALLELISM or KEYBOARD.
_CREDENTIAL_NAME = re.compile(rf"(?:[A-Za-z0-9]+[_.-])*{_KEYWORD}(?:[_.-][A-Za-z0-9]+)*", re.IGNORECASE)

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # URL userinfo, whatever the scheme: keep scheme and host, drop user and password.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"<>]+@"), r"\1" + MASK + "@"),
    # HTTP Authorization, any scheme (Basic, Bearer, Token, Digest ...).
    (
        re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?(?:[a-z]+\s+)?)(?!\*\*\*)[^\s\"',}]+"),
        r"\1" + MASK,
    ),
    (re.compile(r"(?i)(\b(?:bearer|basic)\s+)(?!\*\*\*)[A-Za-z0-9._~+/=-]{4,}"), r"\1" + MASK),
    # Command-line options: --api-key VALUE, --optillm-api-key=VALUE, --password VALUE.
    (
        re.compile(rf"(?i)(--(?:[a-z0-9]+-)*{_KEYWORD}(?:-[a-z0-9]+)*(?:=|\s+))(?!\*\*\*)[^\s\"']+"),
        r"\1" + MASK,
    ),
    # Query parameters that carry credentials.
    (
        re.compile(
            r"(?i)([?&;](?:auth|token|access_token|id_token|api_key|apikey|key|secret|password|passwd|pass|sig|"
            r"signature|client_secret|x-amz-signature|code)=)[^&\s#\"']+"
        ),
        r"\1" + MASK,
    ),
    # Quoted key (JSON, Python repr, YAML): "api_key": "value", 'master_key': 'value'.
    (
        re.compile(
            rf"(?i)([\"'](?:[a-z0-9]+[_.-])*{_KEYWORD}(?:[_.-][a-z0-9]+)*[\"']\s*[:=]\s*)"
            r"(?!\"?\*\*\*)(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s,}\]]+)"
        ),
        r"\1" + '"' + MASK + '"',
    ),
    # An assignment or YAML key at the start of a line: the value runs to the end of it.
    (
        re.compile(
            rf"(?im)^([ \t]*(?:-[ \t]+)?(?:export[ \t]+)?(?:[a-z0-9]+[_.-])*{_KEYWORD}(?:[_.-][a-z0-9]+)*"
            r"[ \t]*[=:][ \t]*)(?!\*\*\*)(?=\S).*$"
        ),
        r"\1" + MASK,
    ),
    # NAME_KEY=value or NAME_KEY: value inside a line (argv, prose): up to the next blank.
    (
        re.compile(
            rf"(?i)\b((?:[a-z0-9]+_)+{_KEYWORD}(?:_[a-z0-9]+)*|{_KEYWORD}(?:_[a-z0-9]+)+)(=|:[ \t]*)"
            r"(?!\*\*\*|set \(\*\*\*\))[^\s,;)}\]]+"
        ),
        r"\1\2" + MASK,
    ),
    # Well-known key formats, wherever they are.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{8,}"), MASK),
)

_lock = threading.Lock()
_known: dict[str, re.Pattern[str]] = {}
# Redaction is a pure function of the text and the known values, and a run redacts the same
# few hundred texts (evidence, rendered results) a couple of thousand times: each Result
# redacts its fields, then every sink again what it writes. The memo is emptied whenever a
# value is registered, and a result computed before a registration is never stored (the
# generation it began under must still be current), so it never hides a newer secret.
_MEMO_LIMIT = 4096
# Texts longer than this (whole config files) are redacted each time instead: the memo keeps
# its keys, so this bounds its memory to about _MEMO_LIMIT x _MEMO_TEXT_LIMIT characters.
_MEMO_TEXT_LIMIT = 16384
_memo: dict[str, str] = {}
_generation = 0


class Secret:
    """A secret value: shows as ``***`` everywhere; ``reveal()`` is the one way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("a Secret is never pickled (it would leave the process in clear)")


def generation() -> int:
    """Changes whenever a secret is registered: a text redacted under an older generation
    may hold a secret known only now."""
    return _generation


def is_secret_name(name: str) -> bool:
    """Whether a variable or key name says it holds a credential (a part is KEY, TOKEN ...)."""
    return bool(_CREDENTIAL_NAME.fullmatch(name.strip()))


def worth_registering(value: str) -> bool:
    """Long enough and not a word or number that appears everywhere."""
    stripped = value.strip()
    return (
        len(stripped) >= MIN_SECRET_LENGTH
        and stripped.lower() not in _NOT_SECRETS
        and not re.fullmatch(r"[0-9.:/-]+", stripped)
    )


def _split_tolerant(value: str) -> re.Pattern[str]:
    """Matches ``value`` also when a line break (continuation, indentation) splits it."""
    gap = r"(?:\\?\r?\n[ \t]*)?"
    return re.compile(gap.join(re.escape(char) for char in value))


def register_secret(value: str | None) -> None:
    """Remember a value that must never be shown (short or common values are ignored)."""
    if not value or not worth_registering(value):
        return
    forms = {value.strip(), value}
    # The same value as json.dumps writes it (quotes, backslashes, tabs, non-ASCII escaped).
    forms |= {json.dumps(form)[1:-1] for form in list(forms)}
    global _generation
    with _lock:
        for form in forms:
            if form and form not in _known:
                _known[form] = _split_tolerant(form)
                _generation += 1
                _memo.clear()


def register_secret_env(names: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
    environ = os.environ if environ is None else environ
    for name in names:
        register_secret(environ.get(name))


def register_env_values(values: Mapping[str, str]) -> None:
    """Register the values of every credential-named key of an env mapping, and URL passwords."""
    for key, value in values.items():
        if is_secret_name(key):
            register_secret(value)
        register_url_credentials(value)


_USERINFO = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://([^/\s@'\"<>]+)@")


def register_url_credentials(text: str) -> None:
    """Register the user:password of every URL in ``text`` (shown elsewhere, e.g. decoded)."""
    for match in _USERINFO.finditer(text or ""):
        user, _, password = match.group(1).partition(":")
        register_secret(password)
        register_secret(user)


def register_structure(data: object, key: str = "") -> None:
    """Register every credential-named value in parsed YAML/JSON (api_key, master_key ...)."""
    if isinstance(data, Mapping):
        for name, value in data.items():
            register_structure(value, str(name))
    elif isinstance(data, list | tuple):
        for item in data:
            register_structure(item, key)
    elif isinstance(data, str):
        if key and is_secret_name(key):
            register_secret(data)
        register_url_credentials(data)


def redact(text: str) -> str:
    """Return ``text`` with every known secret and credential-shaped token masked."""
    if not text:
        return text
    remembered = _memo.get(text)
    if remembered is not None:
        return remembered
    with _lock:
        generation = _generation
        known = sorted(_known.items(), key=lambda item: len(item[0]), reverse=True)
    redacted = _redact_uncached(text, known)
    with _lock:
        if generation == _generation and len(text) <= _MEMO_TEXT_LIMIT:
            if len(_memo) >= _MEMO_LIMIT:
                _memo.clear()
            _memo[text] = redacted
    return redacted


def _redact_uncached(text: str, known: list[tuple[str, re.Pattern[str]]]) -> str:
    # A split value needs a line break in the text (every gap of the tolerant pattern holds a
    # newline): without one, the exact match above is all there is to find.
    can_split = "\n" in text
    for value, pattern in known:
        if value in text:
            text = text.replace(value, MASK)
        elif can_split and value[0] in text:
            text = pattern.sub(MASK, text)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def redact_data(data: Any) -> Any:
    """A copy of structured data (dicts, lists, strings, Secrets) fit to serialize."""
    if isinstance(data, Secret):
        return MASK
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, Mapping):
        return {
            key: (MASK if isinstance(key, str) and is_secret_name(key) and value else redact_data(value))
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return type(data)(redact_data(item) for item in data)
    return data


def redact_mapping(values: Mapping[str, str]) -> dict[str, str]:
    """A copy of an env mapping fit to show: credential-named values masked."""
    return {key: (MASK if is_secret_name(key) and value else redact(value)) for key, value in values.items()}


def strip_userinfo(url: str) -> str:
    """A URL without its ``user:password@`` part (for evidence and netloc comparisons)."""
    return _SHAPES[0][0].sub(r"\1" + MASK + "@", url)
