"""Pydantic's validation errors in the administrator's words, in one place.

Each error of a site file becomes (key, sentence): the dotted key it is about (None when the
sentence names the key itself, as "unknown key 'x' in [idm]" does) and a sentence that says what
the value must be. `_SENTENCES` maps pydantic's error type to that sentence; an error type it does
not name gets a plain fallback, never pydantic's own message. No sentence quotes the value that
was given: it may be a secret written in the wrong place.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Mapping
from datetime import date
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

__all__ = ["REFERENCE_FORMS", "describe", "dotted_key"]

REFERENCE_FORMS = (
    'a secret must be { env = "..." } or { file = "..." } (with key = "..." for a JSON file), '
    "not a plain value"
)

Loc = tuple[int | str, ...]

# Patterns of the site model's fields, in words.
_PATTERNS = {
    r"^[A-Z]+-\d{3}(\[[^\[\]]+\])?$": (
        "must be a check id such as 'TLS-005' (capital letters, '-', three digits), or a check id "
        "and one of its cases in brackets such as 'TLS-005[hermod]'"
    ),
    r"^[A-Za-z0-9._-]+$": "may hold only letters, digits, '.', '_' and '-'",
    r"^[0-9a-f]{64}$": "must be a sha256 written as 64 lowercase hexadecimal digits",
}

_KINDS: dict[type, str] = {
    str: "text values",
    int: "whole numbers",
    float: "numbers",
    bool: "true or false values",
    date: "dates",
}


def _ctx(error: ErrorDetails, name: str) -> Any:
    return (error.get("ctx") or {}).get(name)


def _own_words(error: ErrorDetails) -> str:
    # The model's own validators speak the administrator's words already.
    return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _pattern(error: ErrorDetails) -> str:
    return _PATTERNS.get(str(_ctx(error, "pattern")), "does not have the form this key needs")


def _table(error: ErrorDetails) -> str:
    if _ctx(error, "class_name") == "SecretRef":
        return REFERENCE_FORMS
    return "must be a table (a [section] or { key = value, ... })"


_Sentence = Callable[[ErrorDetails], str]

_SENTENCES: Mapping[str, _Sentence] = {
    "missing": lambda e: "required key is missing",
    "int_type": lambda e: "must be a whole number",
    "int_parsing": lambda e: "must be a whole number",
    "int_from_float": lambda e: "must be a whole number",
    "float_type": lambda e: "must be a number",
    "float_parsing": lambda e: "must be a number",
    "bool_type": lambda e: "must be true or false",
    "bool_parsing": lambda e: "must be true or false",
    "string_type": lambda e: "must be text (in quotes)",
    "date_type": lambda e: "must be a TOML date such as 2026-12-31, without quotes",
    "date_parsing": lambda e: "must be a TOML date such as 2026-12-31, without quotes",
    "date_from_datetime_parsing": lambda e: (
        "must be a TOML date such as 2026-12-31, without quotes"
    ),
    "date_from_datetime_inexact": lambda e: "must be a date without a time of day",
    "literal_error": lambda e: f"must be {_ctx(e, 'expected')}",
    "string_pattern_mismatch": _pattern,
    "string_too_short": lambda e: "must not be empty",
    "greater_than": lambda e: f"must be greater than {_ctx(e, 'gt')}",
    "greater_than_equal": lambda e: f"must be at least {_ctx(e, 'ge')}",
    "less_than": lambda e: f"must be less than {_ctx(e, 'lt')}",
    "less_than_equal": lambda e: f"must be at most {_ctx(e, 'le')}",
    "model_type": _table,
    "model_attributes_type": _table,
    "dict_type": _table,
    "value_error": _own_words,
    "assertion_error": _own_words,
}


def describe(error: ErrorDetails, root: type[BaseModel]) -> tuple[str | None, str]:
    """(dotted key or None, sentence) for one of pydantic's errors validating `root`."""
    loc: Loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        return None, _unknown_key(loc, root)
    if error["type"] == "list_type":
        return dotted_key(loc) or None, f"must be a list of {_list_kind(loc, root)}"
    sentence = _SENTENCES.get(error["type"])
    problem = sentence(error) if sentence else "is not a value this key accepts (see the docs)"
    return dotted_key(loc) or None, problem


def dotted_key(loc: Loc) -> str:
    """`idm.tenant_id`, `endpoints[0].url`: a key as the site file's messages name it."""
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else part
    return key


def _unknown_key(loc: Loc, root: type[BaseModel]) -> str:
    *container, name = loc
    where = _where(tuple(container))
    model = _model_at(root, tuple(container))
    sentence = f"unknown key '{name}' {where}"
    if model is not None:
        close = difflib.get_close_matches(str(name), list(model.model_fields), n=1)
        if close:
            sentence += f"; did you mean '{close[0]}'?"
    return sentence


def _where(container: Loc) -> str:
    if not container:
        return "at the top level"
    if isinstance(container[-1], int):
        table = ".".join(str(part) for part in container[:-1] if isinstance(part, str))
        return f"in [[{table}]] number {container[-1] + 1}"
    if len(container) == 1:
        return f"in [{container[0]}]"
    return f"in {dotted_key(container)}"


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model that validates the value at `loc`, or None where it is not a model."""
    annotation = _annotation_at(root, loc)
    return annotation if _is_model(annotation) else None


def _annotation_at(root: type[BaseModel], loc: Loc) -> Any:
    annotation: Any = root
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(part, int):
            if get_origin(annotation) is not list:
                return None
            annotation = get_args(annotation)[0]
        elif _is_model(annotation) and part in annotation.model_fields:
            annotation = annotation.model_fields[part].annotation
        else:
            return None
    return _unwrap(annotation)


def _unwrap(annotation: Any) -> Any:
    """The annotation without Annotated metadata and without `| None`."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            rest = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _list_kind(loc: Loc, root: type[BaseModel]) -> str:
    annotation = _annotation_at(root, loc)
    if get_origin(annotation) is not list:
        return "values"
    item = _unwrap(get_args(annotation)[0])
    if _is_model(item):
        table = ".".join(str(part) for part in loc if isinstance(part, str))
        return f"[[{table}]] tables"
    return _KINDS.get(item, "values")
