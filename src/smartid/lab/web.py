"""Small HTTP helpers shared by the lab's FastAPI apps."""

from __future__ import annotations

import base64
import binascii

from fastapi import HTTPException, Request

__all__ = ["basic_credentials", "bounded_body", "unauthorized"]


def unauthorized(realm: str) -> HTTPException:
    """401 that says nothing about which part of the credentials was wrong."""
    return HTTPException(
        401, "authentication required", headers={"WWW-Authenticate": f'Basic realm="{realm}"'}
    )


def basic_credentials(request: Request, realm: str) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise unauthorized(realm)
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise unauthorized(realm) from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise unauthorized(realm)
    return user, password


async def bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
