"""What the service does against odd clients: a request body limit enforced before the body is parsed, and the
usual security headers (a Content-Security-Policy of 'self' only) on every answer. The API key check and CORS
are in app.py; the threat model is in docs/serving.md."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path

from fastapi import HTTPException

API_KEY_HEADER = "x-api-key"
MAX_BODY_BYTES = 1 << 20       # a GenerateRequest is a few hundred bytes; 1 MB leaves room for a long prompt


def _json(status: int, body: dict, headers: list[tuple[bytes, bytes]] | None = None) -> list[dict]:
    raw = json.dumps(body).encode()
    return [{"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                         *(headers or [])]},
            {"type": "http.response.body", "body": raw}]


class BodyLimit:
    """ASGI middleware: a request whose Content-Length is over `limit` (or not a number) gets 413 before a byte of
    its body is read; a body without a length (chunked) is counted as it arrives and refused with 413 at the
    limit."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        too_big = {"error": f"the request body is over this server's limit of {self.limit} bytes"}
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            for message in _json(413, too_big, [(b"connection", b"close")]):
                await send(message)
            return None
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:   # FastAPI turns any other exception while it reads a body into 400
                    raise HTTPException(413, too_big["error"])
            return message

        return await self.app(scope, counted, send)


class SecurityHeaders:
    """ASGI middleware: `headers` added to every response that does not set them itself."""

    def __init__(self, app, headers: dict[str, str]):
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *((k, v) for k, v in self.headers
                                                                      if k not in have)]
            await send(message)

        return await self.app(scope, receive, with_headers)


class ApiKey:
    """ASGI middleware: 401 unless the request carries `key` in X-API-Key, compared in constant time (no timing
    side channel); requests from this machine are let through unless `for_local` (a reverse proxy on this
    machine makes every client look local)."""

    def __init__(self, app, key: str, for_local: bool, is_local):
        self.app, self.key, self.for_local, self.is_local = app, key.encode(), for_local, is_local

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or (not self.for_local and self.is_local((scope.get("client") or ("",))[0])):
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(API_KEY_HEADER.encode(), b"")
        if hmac.compare_digest(given, self.key):
            return await self.app(scope, receive, send)
        where = "every request" if self.for_local else "a request from off this machine"
        for message in _json(401, {"error": f"{where} needs the {API_KEY_HEADER} header"}):
            await send(message)


def content_security_policy(index_html: Path) -> str:
    """'self' only: the viewer's one inline script (the import map) allowed by its hash, its inline <style> by
    'unsafe-inline' (styles cannot run code), images also from data: (the empty favicon) and blob: (three.js
    textures)."""
    html = index_html.read_text()
    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
              for m in re.findall(r"<script type=\"importmap\">(.*?)</script>", html, re.S)]
    return "; ".join(["default-src 'self'", f"script-src 'self' {' '.join(hashes)}".strip(),
                      "style-src 'self' 'unsafe-inline'", "img-src 'self' data: blob:", "connect-src 'self'",
                      "worker-src 'self' blob:", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
                      "frame-ancestors 'none'"])


def security_headers(csp: str) -> dict[str, str]:
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer", "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=(), xr-spatial-tracking=(self)"}
