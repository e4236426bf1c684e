"""The explorer: a page at `/` and its files under `/explorer/`, for a browser that then calls
the API (see server/explorer/).

The URL only ever picks a name from `ASSETS`, never a path, so nothing but these files can be
served; each is read once per process, when first asked for, and answered with its ETag.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Blueprint, Response, abort, request

from server.security import PAGE_BLUEPRINT

FOLDER = Path(__file__).with_name("explorer")
PAGE = "index.html"
# Every file of the page, with its media type.
ASSETS = {
    PAGE: "text/html; charset=utf-8",
    "explorer.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "render.js": "text/javascript; charset=utf-8",
    "plot.js": "text/javascript; charset=utf-8",
    "explorer.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


def blueprint(folder: Path = FOLDER) -> Blueprint:
    """Return the routes serving the page and its files from `folder`."""
    pages = Blueprint(PAGE_BLUEPRINT, __name__)
    read: dict[str, tuple[bytes, str]] = {}  # name -> (content, ETag)

    def serve(name: str) -> Response:
        if name not in read:
            content = (folder / name).read_bytes()
            read[name] = (content, hashlib.sha256(content).hexdigest()[:32])
        content, etag = read[name]
        response = Response(content, content_type=ASSETS[name])
        response.set_etag(etag)
        response.make_conditional(request)  # a 304 without the body when the ETag matches
        return response

    @pages.get("/")
    def page() -> Response:
        return serve(PAGE)

    @pages.get("/explorer/<name>")
    def asset(name: str) -> Response:
        if name == PAGE or name not in ASSETS:
            abort(404)
        return serve(name)

    return pages
