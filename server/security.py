"""Who may call the API and how its answers are hardened: the optional API key, CORS, headers
(the API's JSON, and the explorer page's own policy).

Kept apart from the routes so that every answer, errors included, passes the same checks, and so
that the settings and the OpenAPI document name the same header, paths and rules.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from flask import Flask, Response, request

from server.errors import Unauthorized

# Sent with every answer, errors included, but the explorer page and its files. The API serves
# JSON only: no framing, no sniffing, no scripts, no referrer, and nothing kept in a shared cache
# (answers are about people).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}
# The explorer page (server.pages) is the one thing served for a browser to render: its own
# scripts, styles and images from this origin, calls to this origin's API, nothing inline, nothing
# from elsewhere. It and its files are the same for everyone, so they may be kept, but are checked
# against their ETag every time: a new release is seen at once.
PAGE_BLUEPRINT = "pages"
PAGE_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": PAGE_CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
}
API_KEY_HEADER = "X-API-Key"
API_KEY_MIN_LENGTH = 16
# Routes a load balancer or a client needs before it has a key; every other route needs the key
# when one is configured, but the page's (it holds no data: the key is asked for by its calls).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
CORS_METHODS = "GET, POST"
CORS_MAX_AGE_SECONDS = 600
_API_KEY = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what a header value can carry unchanged
_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?|\*")


def is_api_key(text: str) -> bool:
    """Return whether text may be the API key: long enough, and sendable unchanged in a header."""
    return len(text) >= API_KEY_MIN_LENGTH and _API_KEY.fullmatch(text) is not None


def is_origin(text: str) -> bool:
    """Return whether text is an origin as browsers send it (`https://host[:port]`), or `*`."""
    return _ORIGIN.fullmatch(text) is not None


def register_security(app: Flask, api_key: str | None, cors_origins: tuple[str, ...]) -> None:
    """Ask for the API key when one is set, answer CORS as configured, add the security headers."""
    expected = hashlib.sha256(api_key.encode()).digest() if api_key is not None else None
    origins = frozenset(cors_origins)

    def allowed_origin() -> str | None:
        origin = request.headers.get("Origin")
        if origin is None or not origins:
            return None
        return origin if origin in origins else ("*" if "*" in origins else None)

    @app.before_request
    def preflight_or_key() -> Response | None:
        if (
            request.method == "OPTIONS"
            and "Access-Control-Request-Method" in request.headers
            and allowed_origin() is not None
        ):
            # A browser's preflight carries no credentials: answer it before asking for the key.
            return Response(status=204)
        if (
            expected is None
            or request.path in PUBLIC_PATHS
            or request.blueprint == PAGE_BLUEPRINT
            or request.method == "OPTIONS"
        ):
            return None
        given = request.headers.get(API_KEY_HEADER, "").encode("utf-8", "surrogatepass")
        # Digests of equal length, compared in a time that does not depend on where they differ,
        # tell a client nothing about the key, not even its length.
        if not hmac.compare_digest(hashlib.sha256(given).digest(), expected):
            raise Unauthorized(f"This route needs a valid API key in the {API_KEY_HEADER} header.")
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        page = request.blueprint == PAGE_BLUEPRINT and response.status_code < 400
        for name, value in (PAGE_HEADERS if page else SECURITY_HEADERS).items():
            response.headers.setdefault(name, value)
        if origins:
            response.vary.add("Origin")
            origin = allowed_origin()
            if origin is not None:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Expose-Headers"] = "Retry-After"
                if request.method == "OPTIONS":
                    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
                    response.headers["Access-Control-Allow-Headers"] = (
                        f"Content-Type, {API_KEY_HEADER}"
                    )
                    response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_SECONDS)
        return response
