"""Encryption of designated fields in request bodies (urlencoded forms and JSON).

Pure functions: they take the body bytes, the designated names or paths and a `seal` callable
(plaintext bytes -> token, bound to the user's scope by the caller) and return the new body.
Input that cannot be parsed raises FieldError (the caller answers 400 and never forwards the
plaintext). A value that already looks like a token is sealed again like any other value, so a
client cannot plant someone else's ciphertext for the gateway to decrypt. Never logs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from gateway.crypto.errors import FieldError

__all__ = [
    "JsonPath",
    "compile_json_path",
    "encrypt_form_fields",
    "encrypt_json_fields",
    "shadows",
]

Seal = Callable[[bytes], str]

# -- application/x-www-form-urlencoded ------------------------------------------------------

_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _form_decode(part: bytes) -> bytes:
    if _BAD_PERCENT.search(part):
        raise FieldError("malformed percent-encoding in form body")
    return unquote_to_bytes(part.replace(b"+", b" "))


_BRACKETS = re.compile(r"\[([^\]]*)\]")


def _php_path(name: str) -> list[str]:
    """A form field name as PHP and Rack (Rails) read it: `a.b[c][]` -> ["a_b", "c", ""]."""
    name = name.lstrip(" ").lstrip("[]")  # PHP drops leading spaces, Rack leading brackets
    base, bracket, rest = name.partition("[")
    path = [base.rstrip("]").replace(" ", "_").replace(".", "_")]
    return path + _BRACKETS.findall(bracket + rest)


def shadows(name: str, names: Collection[str]) -> bool:
    """SECURITY: `name` is not a designated field but PHP or Rack would read it as one (or as
    something inside one): `title[]`, `title[x]`, `ti.tle`, ` title`. The caller refuses it."""
    if name in names:
        return False
    path = _php_path(name)
    return any(path[: len(p)] == p for p in map(_php_path, names))


def encrypt_form_fields(body: bytes, names: Collection[str], seal: Seal) -> bytes:
    """Seal the values of the named fields; every other byte of the body stays as it was."""
    if b";" in body:  # SECURITY: Rack 2 and older parse_qs split fields on `;` too
        raise FieldError("raw ; in a form body")
    wanted = {name.encode("utf-8") for name in names}
    out: list[bytes] = []
    for pair in body.split(b"&") if body else []:
        raw_name, _, raw_value = pair.partition(b"=")
        name = _form_decode(raw_name)
        value = _form_decode(raw_value)
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            raise FieldError("form field name is not UTF-8") from None
        if shadows(text, names):
            raise FieldError("form field name another parser reads as a designated one")
        if name in wanted:
            # The token alphabet needs no percent-encoding.
            out.append(raw_name + b"=" + seal(value).encode("ascii"))
        else:
            out.append(pair)
    return b"&".join(out)


# -- JSON with a JSONPath subset ------------------------------------------------------------

_STEP = re.compile(
    r"""\.(?P<name>[A-Za-z_][A-Za-z0-9_-]*)
      | \[(?P<index>[0-9]+)\]
      | \[\*\]|\.\*
      | \[(?P<quote>['"])(?P<qname>(?:(?!(?P=quote)).)+)(?P=quote)\]""",
    re.VERBOSE,
)
_WILDCARD = object()
Step = str | int | object


@dataclass(frozen=True, slots=True)
class JsonPath:
    """`$.a.b`, `$.items[*].note`, `$.a[0]`, `$['odd key']`: names, indexes, wildcards."""

    expression: str
    steps: tuple[Step, ...]


def compile_json_path(expression: str) -> JsonPath:
    """Parse a path of the supported subset; FieldError names what is wrong with it."""
    if not expression.startswith("$"):
        raise FieldError(f"JSON path {expression!r} must start with '$'")
    steps: list[Step] = []
    pos = 1
    while pos < len(expression):
        match = _STEP.match(expression, pos)
        if match is None:
            raise FieldError(f"JSON path {expression!r}: unsupported syntax at offset {pos}")
        if match.group("name") is not None:
            steps.append(match.group("name"))
        elif match.group("qname") is not None:
            steps.append(match.group("qname"))
        elif match.group("index") is not None:
            steps.append(int(match.group("index")))
        else:
            steps.append(_WILDCARD)
        pos = match.end()
    if not steps:
        raise FieldError(f"JSON path {expression!r} selects the whole document")
    return JsonPath(expression, tuple(steps))


def _seal_value(value: Any, seal: Seal) -> str:
    if isinstance(value, str):
        return seal(value.encode("utf-8"))
    # Numbers, booleans, objects and arrays are sealed as their compact JSON text.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return seal(text.encode("utf-8"))


def _apply(node: Any, steps: tuple[Step, ...], seal: Seal) -> None:
    step, rest = steps[0], steps[1:]
    if isinstance(node, dict):
        if step is _WILDCARD:
            keys: Iterable[Any] = list(node)
        elif isinstance(step, str):
            keys = [step] if step in node else []
        else:
            keys = []
    elif isinstance(node, list):
        if step is _WILDCARD:
            keys = range(len(node))
        elif isinstance(step, int) and step < len(node):
            keys = [step]
        else:
            keys = []
    else:
        return
    for key in keys:
        if rest:
            _apply(node[key], rest, seal)
        elif node[key] is not None:
            node[key] = _seal_value(node[key], seal)


def _reject_constant(name: str) -> Any:
    raise FieldError(f"JSON body contains {name}")


def encrypt_json_fields(body: bytes, paths: Collection[JsonPath | str], seal: Seal) -> bytes:
    """Seal the values the paths select (absent paths and nulls are left alone).

    The result is compact UTF-8 JSON. FieldError for a body that is not strict JSON.
    """
    compiled = [p if isinstance(p, JsonPath) else compile_json_path(p) for p in paths]
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FieldError("body is not valid JSON") from None
    try:
        for path in compiled:
            _apply(doc, path.steps, seal)
        # A lone surrogate ("\ud800") parses but cannot be encoded, and 1e999 would come out
        # as `Infinity`, which is not JSON: refused, never a 500 or a body the app misreads.
        out = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return out.encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        raise FieldError("body is not valid JSON") from None
