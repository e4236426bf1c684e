"""The explorer page in a real browser: Chromium (Debian's) driven by Playwright, against the real
stack — DynamoDB Local, a published 2,000-user synthetic export, gunicorn on a free port.

The export has one hostile interest tag (`<img src=x onerror=alert(1)>`) followed by a few users,
so that every view that shows names shows it; the server asks for an API key. Each test waits on
the page's own state (`document.body.dataset.state`), never on a fixed sleep. Screenshots of the
main views go to `build/screenshots/` (or `$SCREENSHOTS_DIR`: `make images` points it at
`images/`, the ones the README shows).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack import dynamodb_local as local
from tests.fakes import aws_env, wait_for
from tests.test_server_e2e import OWN_SETTINGS, answers, generate_and_serve, request

pytestmark = [pytest.mark.slow, pytest.mark.dynamodb_local]

ROOT = Path(__file__).resolve().parents[1]
USERS = 2000
HOSTILE = "<img src=x onerror=alert(1)>"
API_KEY = "explorer-test-key-0123456789"
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "build" / "screenshots")


def chromium_path() -> str:
    """Return Debian's Chromium (installed by `make install` when missing), or skip."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is not installed (make install installs Debian's package)")
    return found


@dataclass
class Explorer:
    """The running stack the page is tested against."""

    base_url: str
    port: int
    dynamodb: local.DynamoDBLocal
    server: subprocess.Popen[bytes]

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, answer = request(self.port, method, path, body, {"X-API-Key": API_KEY})
        return status, answer


def hostile_export(folder: Path) -> None:
    """Write a synthetic export whose interests include a hostile tag followed by five users."""
    subprocess.run(
        [sys.executable, "run_generator.py", "synthesize", "--users", str(USERS), "--out", folder],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    interests = folder / "user_interests.csv"
    with interests.open(newline="") as file:
        header = next(csv.reader(file))
    with interests.open("a", newline="") as file:
        writer = csv.writer(file)
        for user in (1, 2, 3, 4, 5):
            row = {"user_handle": str(user), "interest_tag": HOSTILE}
            writer.writerow([row.get(name, "2017-06-27 16:26:52") for name in header])


@pytest.fixture(scope="module")
def explorer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Explorer]:
    tmp = tmp_path_factory.mktemp("explorer")
    hostile_export(tmp / "export")
    dynamodb = local.start(local.free_port(), None, log_path=tmp / "dynamodb.log")
    server: subprocess.Popen[bytes] | None = None
    try:
        port = local.free_port()
        env = aws_env(
            dynamodb.endpoint_url,
            **{**OWN_SETTINGS, "DATA_DIR": str(tmp / "export")},
            DYNAMODB_TABLE_PREFIX=f"explorer_{uuid.uuid4().hex[:8]}",
            ARTIFACT_URI=(tmp / "artifacts").as_uri(),
            HOST="127.0.0.1",
            PORT=str(port),
            GUNICORN_WORKERS="1",
            GUNICORN_THREADS="4",
            API_KEY=API_KEY,
            # A stopped store shows at once: nothing answered from a stale cache.
            STALE_IF_ERROR_SECONDS="0",
            POINTER_CACHE_SECONDS="0",
            RESULT_CACHE_MB="0",
        )
        server = generate_and_serve(tmp, env)
        wait_for(lambda: answers(port, "/healthz", 200, server), "the server answers", 60)
        yield Explorer(f"http://127.0.0.1:{port}", port, dynamodb, server)
    finally:
        local.terminate(server, timeout=20)
        local.stop(dynamodb)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, explorer: Explorer) -> Iterator[Any]:
    """A fresh page (its own sessionStorage) whose dialogs and page errors are recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.dialogs = []  # type: ignore[attr-defined]
    opened.errors = []  # type: ignore[attr-defined]
    opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    yield opened
    context.close()


def open_page(page: Any, explorer: Explorer, query: str = "", key: str | None = API_KEY) -> None:
    """Open the page (with a query string), save the API key, and wait until it is settled."""
    page.goto(f"{explorer.base_url}/{query}")
    if key is not None:
        page.fill("#api-key", key)
        page.click("#api-key-save")
    settled(page)


def settled(page: Any) -> str:
    """Wait until the page is done loading; return its state (ready or error)."""
    # A locator, not wait_for_function: the page's CSP forbids the eval that one may need.
    page.locator("body[data-state=ready], body[data-state=error]").wait_for(timeout=20_000)
    return str(page.evaluate("document.body.dataset.state"))


def submitted(page: Any, form: str) -> str:
    """Submit a form and wait for the answer to be shown; return the page's state."""
    page.evaluate("document.body.dataset.state = 'submitting'")
    page.click(f"{form} [type=submit]")
    return settled(page)


def rows(page: Any, table: str) -> list[tuple[int, str]]:
    """Return the (handle, score text) of every neighbour row of a results table."""
    return [
        (int(row.get_attribute("data-user-handle")), row.query_selector("td.score").inner_text())
        for row in page.query_selector_all(f"{table} tr[data-user-handle]")
    ]


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"explorer-{name}.png"), full_page=True)


def a_user_with_neighbours(explorer: Explorer, model: str) -> tuple[int, list[dict[str, Any]]]:
    for handle in range(1, 200):
        status, answer = explorer.api(
            "POST", "/similar-users", {"user_handle": handle, "model_handle": model, "top_n": 5}
        )
        if status == 200 and len(answer["data"]["similar_users"]) == 5:
            return handle, answer["data"]["similar_users"]
    raise AssertionError(f"no user with 5 neighbours under {model}")


def test_a_lookup_shows_the_same_users_and_scores_as_the_api(page, explorer):
    handle, expected = a_user_with_neighbours(explorer, "hybrid")
    open_page(page, explorer)
    page.click('a[data-view="lookup"]')
    page.fill("#lookup-user", str(handle))
    page.select_option("#lookup-model", "hybrid")
    page.fill("#lookup-top-n", "5")
    assert submitted(page, "#lookup-form") == "ready"

    shown = rows(page, "#lookup-results")
    assert shown == [(u["user_handle"], str(u["score"])) for u in expected]
    assert page.query_selector_all("#lookup-results td.shared li")  # the explanation is shown
    assert f"user_handle={handle}" in page.url and "model_handle=hybrid" in page.url
    assert page.errors == []
    shot(page, "lookup")


def test_a_deep_link_restores_the_view_and_the_back_button_returns(page, explorer):
    handle, expected = a_user_with_neighbours(explorer, "course_views")
    open_page(page, explorer, f"?view=lookup&user_handle={handle}&model_handle=course_views")
    assert page.is_visible("#view-lookup") and not page.is_visible("#view-models")
    assert page.input_value("#lookup-user") == str(handle)
    assert rows(page, "#lookup-results") == [(u["user_handle"], str(u["score"])) for u in expected]

    page.click('a[data-view="models"]')
    settled(page)
    assert page.is_visible("#view-models")
    page.go_back()
    settled(page)
    assert page.is_visible("#view-lookup")
    assert page.input_value("#lookup-user") == str(handle)
    assert rows(page, "#lookup-results") == [(u["user_handle"], str(u["score"])) for u in expected]


def test_going_back_to_a_view_that_asked_nothing_shows_no_earlier_answer(page, explorer):
    handle, expected = a_user_with_neighbours(explorer, "hybrid")
    open_page(page, explorer, "?view=lookup")
    page.fill("#lookup-user", str(handle))
    page.select_option("#lookup-model", "hybrid")
    page.fill("#lookup-top-n", "5")
    assert submitted(page, "#lookup-form") == "ready"
    assert rows(page, "#lookup-results")
    page.go_back()  # to ?view=lookup, which asked for nobody
    settled(page)
    assert page.input_value("#lookup-user") == ""
    assert rows(page, "#lookup-results") == []
    page.go_forward()
    settled(page)
    assert [handle for handle, _ in rows(page, "#lookup-results")] == [
        u["user_handle"] for u in expected
    ]


def test_the_profile_form_with_a_misspelt_interest_shows_the_match_and_neighbours(page, explorer):
    status, catalogue = explorer.api(
        "GET", "/catalogue?kind=interests&model_handle=hybrid&limit=20"
    )
    assert status == 200
    tag = next(name for name in catalogue["data"]["names"] if len(name) >= 6 and name.isalpha())
    misspelt = tag[:2] + tag[3:]
    open_page(page, explorer, "?view=profile")
    page.select_option("#profile-model", "hybrid")
    page.fill("#profile-interest", misspelt)
    page.click("#profile-interest-add")
    assert page.inner_text("#profile-interests li").startswith(misspelt)
    assert submitted(page, "#profile-form") == "ready"

    matched = page.query_selector("#profile-matched li")
    assert matched.get_attribute("data-how") == "fuzzy"
    assert misspelt in matched.inner_text() and tag in matched.inner_text()
    assert rows(page, "#profile-results")
    assert f"interest={urllib.parse.quote(misspelt)}" in page.url or misspelt in page.url
    shot(page, "profile")


def test_the_compare_view_marks_the_users_both_models_list(page, explorer):
    handle, first = a_user_with_neighbours(explorer, "hybrid")
    _, second = explorer.api(
        "POST", "/similar-users", {"user_handle": handle, "model_handle": "interests", "top_n": 5}
    )
    both = {u["user_handle"] for u in first} & {
        u["user_handle"] for u in second["data"]["similar_users"]
    }
    open_page(
        page, explorer, f"?user_handle={handle}&model_handle=hybrid&compare=interests&top_n=5"
    )
    assert page.is_visible("#view-compare")
    marked = {
        int(row.get_attribute("data-user-handle"))
        for row in page.query_selector_all("#compare-a tr.shared")
    }
    assert marked == both
    assert page.inner_text("#compare-overlap").startswith(f"{len(both)} of ")
    shot(page, "compare")


def test_mutual_matches_are_marked_and_the_filter_keeps_only_them(page, explorer):
    for handle in range(1, 400):
        status, answer = explorer.api("GET", f"/similar-users/{handle}?model_handle=hybrid&top_n=5")
        flags = [u["mutual"] for u in answer["data"]["similar_users"]] if status == 200 else []
        if True in flags and False in flags:
            break
    else:
        raise AssertionError("no user with mutual and one-way matches under hybrid")
    _, kept = explorer.api(
        "GET", f"/similar-users/{handle}?model_handle=hybrid&top_n=5&mutual_only=true"
    )
    open_page(page, explorer, f"?view=lookup&user_handle={handle}&model_handle=hybrid&top_n=5")

    marks = [
        (int(row.get_attribute("data-user-handle")), row.query_selector("td.mutual").inner_text())
        for row in page.query_selector_all("#lookup-results tr[data-user-handle]")
    ]
    assert marks == [
        (u["user_handle"], "↔ mutual" if u["mutual"] else "")
        for u in answer["data"]["similar_users"]
    ]

    page.check("#lookup-mutual-only")
    assert submitted(page, "#lookup-form") == "ready"
    expected = [(u["user_handle"], str(u["score"])) for u in kept["data"]["similar_users"]]
    assert rows(page, "#lookup-results") == expected
    assert page.query_selector_all("#lookup-results tr[data-mutual=false]") == []
    assert "mutual_only=1" in page.url
    assert "mutual match" in page.inner_text("#lookup-caption")

    # The state is in the URL: a deep link into the compare view keeps the filter too.
    open_page(
        page,
        explorer,
        f"?user_handle={handle}&model_handle=hybrid&compare=hybrid&top_n=5&mutual_only=1",
    )
    assert page.is_checked("#compare-mutual-only")
    assert rows(page, "#compare-a") == expected
    assert page.errors == []


def test_the_models_view_lists_every_published_model_with_its_quality(page, explorer):
    _, models = explorer.api("GET", "/models")
    open_page(page, explorer, "?view=models")
    listed = {
        row.get_attribute("data-model-handle")
        for row in page.query_selector_all("#models-table tr[data-model-handle]")
    }
    assert listed == {m["model_handle"] for m in models["models"]}
    assert page.query_selector_all("#models-plot rect")
    shot(page, "models")


def test_an_unknown_user_shows_the_problems_detail(page, explorer):
    open_page(page, explorer, "?view=lookup")
    page.fill("#lookup-user", "999999999")
    assert submitted(page, "#lookup-form") == "error"
    message = page.inner_text("#message")
    assert "999999999" in message  # the problem's detail names the user


def test_without_the_api_key_the_page_asks_for_it_and_a_wrong_one_is_refused(page, explorer):
    page.goto(f"{explorer.base_url}/?view=models")
    assert settled(page) == "error"
    assert "API key" in page.inner_text("#message")
    page.fill("#api-key", "not-the-right-key-at-all")
    page.click("#api-key-save")
    assert settled(page) == "error"
    assert "API key" in page.inner_text("#message")
    page.fill("#api-key", API_KEY)
    page.click("#api-key-save")
    assert settled(page) == "ready"


def test_a_hostile_tag_from_the_export_is_shown_as_text_and_never_runs(page, explorer):
    open_page(page, explorer, "?view=profile")
    page.select_option("#profile-model", "interests")
    page.fill("#profile-interest", HOSTILE)
    page.click("#profile-interest-add")
    assert submitted(page, "#profile-form") == "ready"
    assert HOSTILE in page.inner_text("#profile-matched")
    assert page.query_selector("#view-profile img") is None  # text, not an element
    assert page.dialogs == [] and page.errors == []


def test_a_stopped_store_shows_a_readable_message_and_the_page_recovers(page, explorer):
    handle, _ = a_user_with_neighbours(explorer, "interests")
    open_page(page, explorer, "?view=lookup")
    os.kill(explorer.dynamodb.pid, signal.SIGSTOP)
    try:
        page.fill("#lookup-user", str(handle))
        page.select_option("#lookup-model", "interests")
        assert submitted(page, "#lookup-form") == "error"
        assert "unavailable" in page.inner_text("#message").lower()
    finally:
        os.kill(explorer.dynamodb.pid, signal.SIGCONT)
    wait_for(lambda: explorer.api("GET", "/readyz")[0] == 200, "the store answers again", 30)
    assert submitted(page, "#lookup-form") == "ready"
    assert page.inner_text("#message").strip() == ""


def test_the_page_fits_a_phone_screen(browser, explorer):
    context = browser.new_context(viewport={"width": 375, "height": 740})
    try:
        phone = context.new_page()
        handle, _ = a_user_with_neighbours(explorer, "hybrid")
        open_page(phone, explorer, f"?view=lookup&user_handle={handle}&model_handle=hybrid")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 375  # nothing wider than the screen: no sideways scrolling
        shot(phone, "phone")
    finally:
        context.close()


def test_every_control_can_be_reached_and_used_with_the_keyboard(page, explorer):
    open_page(page, explorer, "?view=lookup")
    page.focus("#lookup-user")
    handle, _ = a_user_with_neighbours(explorer, "hybrid")
    page.keyboard.type(str(handle))
    page.evaluate("document.body.dataset.state = 'submitting'")
    page.keyboard.press("Enter")
    assert settled(page) == "ready"
    assert rows(page, "#lookup-results")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select')].filter(
               c => c.type !== 'hidden' && !(c.labels && c.labels.length)
                    && !c.getAttribute('aria-label')
           ).map(c => c.id)"""
    )
    assert unlabelled == []
    assert json.dumps(page.errors) == "[]"


def test_suggestions_typed_just_before_leaving_the_profile_view_are_never_asked_for(page, explorer):
    open_page(page, explorer, "?view=profile")
    page.clock.install()  # the page's timers from here on move only when the test says
    asked: list[str] = []
    page.on("request", lambda sent: asked.append(sent.url) if "q=pyth" in sent.url else None)
    page.fill("#profile-interest", "pyth")
    page.click('a[data-view="lookup"]')
    page.clock.run_for(2_000)  # well past the pause after the last key
    assert page.is_visible("#view-lookup")
    assert asked == []
