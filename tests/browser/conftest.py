"""Browser tests: Playwright driving Debian's chromium against pytest-django's live server.

One browser per session and one browser context (cookies swapped per test: every test signs in as a fresh
user, since the live server's database is emptied between tests); a page per test whose console errors,
page errors, failed requests and 4xx/5xx responses fail the test unless the test declared them expected.
Tasks run inline (the root conftest sets django-q's sync mode), in the live server's thread, so an upload's
embedding, duplicate detection and calibration really run before the page asks for their status.
IMGSIM_SCREENSHOT_DIR=/some/dir saves a PNG of each page a test names (the README's screenshots).
Every page a test visits is checked once with axe-core (and again in each state a test photographs): a
critical or serious accessibility violation fails the test like a console error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

# Playwright's sync API keeps an asyncio loop in this thread; the ORM calls the tests make between page
# actions are ordinary blocking calls, so Django's guard against ORM use inside a running loop is lifted.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Frame,
    Page,
    Request,
    Response,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

CHROMIUM = Path("/usr/bin/chromium")
# No network on CI machines: without these, chromium keeps trying (and logging) its own background calls.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "pw-browser-12345"
AXE_SCRIPT = Axe().axe_script  # axe-core, shipped inside the axe-playwright-python package
# axe-core's default rules, plus the experimental one for a visible label that is not part of the
# accessible name (a speech user says what they see).
AXE_OPTIONS = {"resultTypes": ["violations"], "rules": {"label-content-name-mismatch": {"enabled": True}}}
AXE_FAILS_ON = ("critical", "serious")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's chromium. Install it with "
            "`apt-get update && apt-get install -y chromium` (scripts/test.sh does this when run as root)."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def browser_context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(15_000)
    yield context
    context.close()


@dataclass
class PageProblems:
    """Everything that went wrong on a page, less what the test said it expects."""

    problems: list[str] = field(default_factory=list)
    expected: list[tuple[re.Pattern[str], int]] = field(default_factory=list)
    aborted_ok: list[re.Pattern[str]] = field(default_factory=list)

    def expect(self, url_pattern: str, status: int) -> None:
        """A response the test provokes on purpose (a refused upload, a 404 page)."""
        self.expected.append((re.compile(url_pattern), status))

    def expect_aborted(self, url_pattern: str) -> None:
        """A request the test cancels on purpose."""
        self.aborted_ok.append(re.compile(url_pattern))

    def _is_expected(self, url: str, status: int | None = None) -> bool:
        return any(pattern.search(url) and (status is None or status == want) for pattern, want in self.expected)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        # Chrome logs every 4xx/5xx as "Failed to load resource"; expected ones are declared by the test.
        if message.text.startswith("Failed to load resource") and self._is_expected(url):
            return
        self.problems.append(f"console error: {message.text} ({url})")

    def on_page_error(self, error: Exception) -> None:
        self.problems.append(f"page error: {error}")

    def on_request_failed(self, request: Request) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" in failure and (
            request.resource_type == "image"
            or request.url.endswith("/favicon.svg")  # fetched as "other", cut off the same way
            or any(p.search(request.url) for p in self.aborted_ok)
        ):
            return  # images (and the favicon) cut off by a navigation, or an upload the test cancelled
        self.problems.append(f"request failed: {request.method} {request.url} {failure}")

    def on_response(self, response: Response) -> None:
        if response.status >= 400 and not self._is_expected(response.url, response.status):
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")


@dataclass
class Session:
    """The signed-in page of one test, its live server, its problems, an accessibility check and a screenshot
    helper."""

    page: Page
    base: str
    problems: PageProblems
    user: Any
    unchecked: bool = True  # the page's current document has not been through axe yet

    def __post_init__(self) -> None:
        self.page.on("framenavigated", self._on_navigated)

    def _on_navigated(self, frame: Frame) -> None:
        if frame == self.page.main_frame:
            self.unchecked = True

    def go(self, path: str) -> Response | None:
        if self.unchecked:
            self.check_accessibility()  # a page the test reached by a click, before it is left
        response = self.page.goto(self.base + path)
        self.check_accessibility()
        return response

    def check_accessibility(self) -> None:
        """Run axe-core on the page as it is now; each critical or serious violation is a problem."""
        self.unchecked = False
        if not self.page.url.startswith(self.base):
            return
        try:
            if not self.page.evaluate("() => typeof window.axe === 'object'"):
                self.page.evaluate(AXE_SCRIPT)
            violations = self.page.evaluate("(options) => axe.run(document, options)", AXE_OPTIONS)["violations"]
        except PlaywrightError as error:
            if "context was destroyed" in str(error):
                return  # the test already navigated on: the next document gets its own check
            raise
        path = self.page.url[len(self.base) :]
        for violation in violations:
            if violation["impact"] in AXE_FAILS_ON:
                targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
                self.problems.problems.append(
                    f"accessibility ({violation['impact']}) {violation['id']} on {path}: {violation['help']} "
                    f"[{targets}]"
                )

    def shot(self, name: str, *, full_page: bool = False) -> None:
        self.check_accessibility()  # the state the test photographs (a dialog open, results shown)
        folder = os.environ.get("IMGSIM_SCREENSHOT_DIR")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            size = self.page.viewport_size or DESKTOP
            self.page.screenshot(path=str(Path(folder) / f"{name}-{size['width']}.png"), full_page=full_page)


def _open_page(context: BrowserContext, problems: PageProblems) -> Page:
    page = context.new_page()
    page.on("console", problems.on_console)
    page.on("pageerror", problems.on_page_error)
    page.on("requestfailed", problems.on_request_failed)
    page.on("response", problems.on_response)
    return page


def _sign_in(context: BrowserContext, live_server: Any, user: Any) -> None:
    client = Client()
    client.force_login(user)
    context.clear_cookies()
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])


@pytest.fixture
def staff_user(transactional_db: None) -> Any:
    return get_user_model().objects.create_user(username="bea", password=PASSWORD, is_staff=True, is_superuser=True)


@pytest.fixture
def session(browser_context: BrowserContext, live_server: Any, staff_user: Any) -> Iterator[Session]:
    """A staff user's signed-in page on the desktop viewport; fails the test on any unexpected problem."""
    problems = PageProblems()
    _sign_in(browser_context, live_server, staff_user)
    page = _open_page(browser_context, problems)
    page.set_viewport_size(DESKTOP)
    session = Session(page, live_server.url, problems, staff_user)
    yield session
    if session.unchecked:
        session.check_accessibility()
    page.close()
    if problems.problems:
        pytest.fail("problems in the browser:\n" + "\n".join(problems.problems), pytrace=False)


@pytest.fixture
def anonymous(browser_context: BrowserContext, live_server: Any, staff_user: Any) -> Iterator[Session]:
    """A page with no session (for signing in through the form)."""
    problems = PageProblems()
    browser_context.clear_cookies()
    page = _open_page(browser_context, problems)
    page.set_viewport_size(DESKTOP)
    session = Session(page, live_server.url, problems, staff_user)
    yield session
    if session.unchecked:
        session.check_accessibility()
    page.close()
    if problems.problems:
        pytest.fail("problems in the browser:\n" + "\n".join(problems.problems), pytrace=False)
