"""Secrets held so that nothing prints them, and the filter that removes them from text.

A resolved secret is a `Secret`: its `str()` and `repr()` are masked, so an f-string, a log call or
an assertion message cannot leak it by accident; code that must send it calls `reveal()`. Every
secret the run resolves is registered with `MASKER`, which removes the value, and its base64 form at
any alignment (so a secret inside an `Authorization: Basic` header or a base64 token is caught as
well), from any text before it is attached, logged or printed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MASK", "MASKER", "Leak", "Masker", "Secret", "encoded_forms", "find_leaks"]

MASK = "****"
# Per-process key: fingerprints compare secrets within a run without being reversible offline.
_FINGERPRINT_KEY = os.urandom(32)
# Shorter values would mask ordinary words; the site model refuses secrets this short.
MIN_SECRET_LENGTH = 6


class Secret:
    """A secret value with a masked `str()`/`repr()`; `source` says where it came from."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The value, for the one place that sends it to a target."""
        return self._value

    def fingerprint(self) -> str:
        """A keyed hash that tells two secrets apart without showing either."""
        digest = hmac.new(_FINGERPRINT_KEY, self._value.encode(), hashlib.sha256)
        return digest.hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({self.source}, {MASK})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not serialisable")


def encoded_forms(value: str) -> set[str]:
    """The value and the base64 runs that appear whenever it is base64-encoded inside any text.

    Base64 encodes 3 bytes as 4 characters, so a value embedded at byte offset 0, 1 or 2 of a larger
    blob shows as one of three character runs; each run keeps only the characters that depend on the
    value's bytes alone. Standard and URL-safe alphabets are both covered.
    """
    raw = value.encode()
    forms = {value}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw + b"\0\0").decode()
        start = -(-8 * offset // 6)
        end = 8 * (offset + len(raw)) // 6
        core = encoded[start:end]
        if len(core) >= 4:
            forms.add(core)
            forms.add(core.replace("+", "-").replace("/", "_"))
    return forms


class Masker:
    """Replaces every registered secret, and its base64 forms, with `MASK`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: list[str] = []

    def register(self, secret: Secret | str) -> None:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            known = set(self._forms) | encoded_forms(value)
            # Longest first, so a value is masked before a shorter form inside it.
            self._forms = sorted(known, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def mask_bytes(self, data: bytes) -> bytes:
        for form in self._forms:
            encoded = form.encode()
            if encoded in data:
                data = data.replace(encoded, MASK.encode())
        return data

    def clear(self) -> None:
        with self._lock:
            self._forms = []


MASKER = Masker()


@dataclass(frozen=True)
class Leak:
    """A secret (named by its source, never its value) found in a file."""

    path: Path
    source: str
    form: str  # "value" or "base64"

    def __str__(self) -> str:
        return f"{self.path}: contains the {self.form} of the secret from {self.source}"


def find_leaks(folder: Path, secrets: Iterable[Secret]) -> list[Leak]:
    """Every file under `folder` that holds a secret or a base64 form of it."""
    leaks: list[Leak] = []
    wanted = [(s, encoded_forms(s.reveal())) for s in secrets]
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for secret, forms in wanted:
            value = secret.reveal()
            if value.encode() in data:
                leaks.append(Leak(path, secret.source, "value"))
            elif any(f.encode() in data for f in forms if f != value):
                leaks.append(Leak(path, secret.source, "base64"))
    return leaks
