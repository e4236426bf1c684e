"""The explorer page as the server serves it: its files, their types, the page's own security
policy, and nothing served beyond them (what the page does in a browser is tested with Playwright).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from flask.testing import FlaskClient

from server import Settings, create_app
from server.pages import ASSETS, FOLDER
from server.security import (
    API_KEY_HEADER,
    PAGE_CONTENT_SECURITY_POLICY,
    SECURITY_HEADERS,
)
from store.memory import MemoryStore
from tests.fakes import publish_lists

KEY = "k3y-for-tests-0123456789abcdef"
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".html": "text/html",
}


def client_with(**settings: Any) -> FlaskClient:
    store = MemoryStore()
    publish_lists(store, {110: [(7, 0.5)], 7: []})
    return create_app(store, Settings(pointer_cache_seconds=0, **settings)).test_client()


@pytest.fixture
def client() -> FlaskClient:
    return client_with()


class Page(HTMLParser):
    """What an HTML page holds: each element's tag and attributes, and each script's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.script_texts: list[str] = []
        self.submit_buttons: dict[str | None, int] = {}  # form id -> submit buttons in it
        self._in_script = False
        self._form: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.script_texts.append("")
        if tag == "form":
            self._form = dict(attrs).get("id")
        if tag == "button" and ("type", "submit") in attrs:
            self.submit_buttons[self._form] = self.submit_buttons.get(self._form, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        if tag == "form":
            self._form = None

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_texts[-1] += data

    def by_id(self, element_id: str) -> tuple[str, dict[str, str | None]]:
        found = [e for e in self.elements if e[1].get("id") == element_id]
        assert len(found) == 1, f"#{element_id}: {len(found)} elements"
        return found[0]


def parsed(client: FlaskClient) -> Page:
    page = Page()
    page.feed(client.get("/").get_data(as_text=True))
    return page


def referenced(client: FlaskClient) -> set[str]:
    """Return the paths of every file the page loads: from its HTML (src, href), and each ES
    module's imports, followed from module to module."""
    page = parsed(client)
    found = set()
    for _, attrs in page.elements:
        for name in ("src", "href"):
            url = attrs.get(name)
            if url and not urlsplit(url).scheme and not url.startswith("#"):
                found.add(urlsplit(urljoin("/", url)).path)
    pages = {path for path in found if path.startswith("/explorer/")}
    modules = [path for path in pages if path.endswith(".js")]
    while modules:
        module = modules.pop()
        source = client.get(module).get_data(as_text=True)
        for imported in re.findall(
            r"""^\s*(?:import|export)\b[^'"]*?from\s*["']([^"']+)["']""", source, re.M
        ):
            path = urlsplit(urljoin(module, imported)).path
            if path not in pages:
                pages.add(path)
                modules.append(path)
    return pages


# -- the page and its files --------------------------------------------------------------------


def test_the_page_is_served_at_the_root_as_html_with_its_own_policy(client):
    response = client.get("/")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == PAGE_CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_pages_policy_allows_nothing_inline_and_nothing_from_elsewhere():
    directives = dict(d.strip().split(" ", 1) for d in PAGE_CONTENT_SECURITY_POLICY.split(";"))

    assert directives == {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "form-action": "'self'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
    }
    assert "unsafe" not in PAGE_CONTENT_SECURITY_POLICY


def test_the_page_and_its_files_need_no_api_key_but_the_api_still_does():
    client = client_with(api_key=KEY)

    assert client.get("/").status_code == 200
    for path in referenced(client):
        assert client.get(path).status_code == 200, path
    assert client.get("/models").status_code == 401
    assert client.get("/models", headers={API_KEY_HEADER: KEY}).status_code == 200


def test_the_page_loads_its_script_styles_and_icon():
    paths = referenced(client_with())

    assert {"/explorer/explorer.js", "/explorer/explorer.css", "/explorer/icon.svg"} <= paths
    assert {"/explorer/api.js", "/explorer/render.js", "/explorer/plot.js"} <= paths


def test_every_file_the_page_loads_is_served_with_its_type_and_cache_headers(client):
    for path in referenced(client):
        response = client.get(path)

        assert response.status_code == 200, path
        assert response.mimetype == TYPES[Path(path).suffix], path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["ETag"]
        assert response.get_data() == (FOLDER / Path(path).name).read_bytes()


def test_every_file_of_the_folder_is_served_and_nothing_else(client):
    on_disk = {path.name for path in FOLDER.iterdir() if path.is_file()}

    assert set(ASSETS) == on_disk
    assert referenced(client) | {"/explorer/index.html"} == {
        f"/explorer/{name}" for name in on_disk
    }


def test_a_file_not_changed_since_it_was_read_is_not_sent_again(client):
    first = client.get("/explorer/explorer.js")

    again = client.get("/explorer/explorer.js", headers={"If-None-Match": first.headers["ETag"]})

    assert again.status_code == 304
    assert again.get_data() == b""
    assert client.get("/", headers={"If-None-Match": first.headers["ETag"]}).status_code == 200


# -- nothing but those files -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/explorer/nope.js",
        "/explorer/",
        "/explorer",
        "/explorer/index.html",
        "/explorer/EXPLORER.JS",
    ],
)
def test_an_unknown_file_is_a_404_problem_with_the_apis_strict_headers(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


@pytest.mark.parametrize(
    "path",
    [
        "/explorer/../server/api.py",
        "/explorer/../pages.py",
        "/explorer/..%2fpages.py",
        "/explorer/..%2F..%2Fpyproject.toml",
        "/explorer/%2e%2e/pages.py",
        "/explorer/%2e%2e%2fpages.py",
        "/explorer/..%5cpages.py",
        "/explorer/....//pages.py",
        "/explorer/%252e%252e%252fpages.py",
        "/explorer/explorer.js%00.py",
        "/explorer/.",
        "/explorer/..",
        "/../server/pages.py",
        "//etc/passwd",
    ],
)
def test_no_path_reaches_a_file_outside_the_page(client, path):
    response = client.get(path)

    assert response.status_code == 404
    text = response.get_data(as_text=True)
    assert "import" not in text
    assert "[build-system]" not in text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_the_page_is_only_read(client, method):
    assert client.open("/", method=method).status_code == 405
    assert client.open("/explorer/explorer.js", method=method).status_code == 405


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/models", {}),
        ("GET", "/similar-users/110", {}),
        ("POST", "/similar-users", {"json": {"user_handle": 110}}),
        ("GET", "/healthz", {}),
        ("GET", "/openapi.json", {}),
        ("GET", "/nowhere", {}),
    ],
)
def test_the_api_keeps_its_strict_headers(client, method, path, kwargs):
    response = client.open(path, method=method, **kwargs)

    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


# -- what the page is made of ------------------------------------------------------------------


def test_the_page_has_no_inline_script_or_style(client):
    page = parsed(client)

    for tag, attrs in page.elements:
        assert tag != "style"
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        for name in ("href", "src", "action", "formaction"):
            assert not (attrs.get(name) or "").strip().lower().startswith("javascript:")
        if tag == "script":
            assert attrs.get("src"), "a script without src is inline"
    assert all(text.strip() == "" for text in page.script_texts)


def test_the_page_loads_nothing_from_another_origin(client):
    for _, attrs in parsed(client).elements:
        for name in ("src", "href", "action"):
            url = attrs.get(name) or ""
            assert not urlsplit(url).scheme and not url.startswith("//"), url


SCRIPT_AND_STYLE = sorted(
    name for name in ASSETS if Path(name).suffix in {".js", ".css", ".svg", ".html"}
)
# Ways to turn text into markup or code: names from an export must only ever be text.
UNSAFE = [
    "innerHTML",
    "outerHTML",
    "insertAdjacentHTML",
    "document.write",
    "eval(",
    "new Function",
    'setTimeout("',
    "setTimeout('",
    "createContextualFragment",
    "DOMParser",
    "srcdoc",
    "javascript:",
    "@import",
    "url(http",
    "expression(",
]


@pytest.mark.parametrize("name", SCRIPT_AND_STYLE)
def test_no_file_of_the_page_turns_text_into_markup_or_code(name):
    text = (FOLDER / name).read_text(encoding="utf-8")

    for unsafe in UNSAFE:
        assert unsafe not in text, f"{unsafe!r} in {name}"


def test_the_page_says_its_language_and_title_and_has_headings(client):
    page = parsed(client)
    tags = [tag for tag, _ in page.elements]

    assert page.elements[0] == ("html", {"lang": "en"})
    assert "title" in tags and "h1" in tags and tags.count("h2") == 4
    assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in (
        page.elements
    )


def test_every_control_of_the_page_is_labelled(client):
    page = parsed(client)
    labelled = {attrs.get("for") for tag, attrs in page.elements if tag == "label"}

    for tag, attrs in page.elements:
        if tag in ("input", "select", "textarea"):
            assert attrs.get("id") in labelled or attrs.get("aria-label"), attrs


# The ids and attributes the browser tests (and anyone scripting the page) rely on.
CONTRACT = {
    "api-key": "input",
    "api-key-save": "button",
    "api-key-status": "p",
    "message": "div",
    "view-lookup": "section",
    "view-profile": "section",
    "view-compare": "section",
    "view-models": "section",
    "lookup-form": "form",
    "lookup-user": "input",
    "lookup-model": "select",
    "lookup-top-n": "input",
    "lookup-mutual-only": "input",
    "lookup-results": "table",
    "profile-form": "form",
    "profile-interest": "input",
    "profile-interest-add": "button",
    "profile-interests": "ul",
    "profile-course": "input",
    "profile-course-add": "button",
    "profile-courses": "ul",
    "profile-assessment-tag": "input",
    "profile-assessment-score": "input",
    "profile-assessment-add": "button",
    "profile-assessments": "ul",
    "profile-model": "select",
    "profile-matched": "ul",
    "profile-unmatched": "ul",
    "profile-results": "table",
    "compare-form": "form",
    "compare-user": "input",
    "compare-model-a": "select",
    "compare-model-b": "select",
    "compare-mutual-only": "input",
    "compare-a": "table",
    "compare-b": "table",
    "compare-overlap": "p",
    "models-table": "table",
    "models-default": "p",
    "models-plot": "svg",
}


def test_the_page_has_the_elements_its_browser_tests_rely_on(client):
    page = parsed(client)

    for element_id, tag in CONTRACT.items():
        assert page.by_id(element_id)[0] == tag, element_id
    assert page.by_id("api-key")[1]["type"] == "password"
    for checkbox in ("lookup-mutual-only", "compare-mutual-only"):
        assert page.by_id(checkbox)[1]["type"] == "checkbox"
    assert page.by_id("message")[1] == {
        "id": "message",
        "class": "message",
        "role": "alert",
        "hidden": None,
    }
    views = [
        attrs["data-view"] for tag, attrs in page.elements if tag == "a" and "data-view" in attrs
    ]
    assert views == ["lookup", "profile", "compare", "models"]
    hidden = {v: "hidden" in page.by_id(f"view-{v}")[1] for v in views}
    assert hidden == {"lookup": False, "profile": True, "compare": True, "models": True}
    for select in ("lookup-model", "profile-model", "compare-model-a", "compare-model-b"):
        at = page.elements.index(page.by_id(select))
        assert page.elements[at + 1] == ("option", {"value": ""}), select
    assert page.submit_buttons == {
        "api-key-form": 1,
        "lookup-form": 1,
        "profile-form": 1,
        "compare-form": 1,
    }
    assert ("body", {"data-state": "loading"}) in page.elements
