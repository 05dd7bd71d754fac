"""The web UI end to end: the real service process, driven by a real headless chromium.

Debian's chromium and chromedriver (``apt-get install chromium chromium-driver``;
.ci/run installs them): nothing downloads a browser. Without them these tests skip,
except under CI (``CI`` set), where they fail. Screenshots are saved under
``$RECOMMENDER_ARTIFACTS_DIR/browser`` (default: a pytest temporary directory);
the run's summary says where.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from recommender import Recommender
from recommender.embedding.encoders import HashingEncoder
from recommender.ingest.demo import DEFAULT_STORY, demo_articles

from . import conftest
from .test_service import _free_port, _wait_ready

pytestmark = pytest.mark.browser

# Without the background-networking flags chromium tries to reach update and
# metrics services first, and on a closed network its connections then fail.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Pages reach the test server and nothing else: /docs' CDN assets fail at once, offline.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)
WAIT_S = 20


@pytest.fixture(autouse=True)
def _loopback_only(loopback_only: None) -> None:
    """The test talks to the service and to chromedriver on localhost, nothing else."""


def _browser_binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        driver = None
    if chromium and driver:
        return chromium, driver
    message = (
        "the browser tests need chromium, chromedriver and selenium "
        "(apt-get install -y chromium chromium-driver; pip install -e '.[test]')"
    )
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {message}")
    pytest.skip(message)


# -- the service -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "demo"
    Recommender.build(demo_articles(), path, encoder=HashingEncoder(256)).close()
    return path


@pytest.fixture(scope="module")
def server(index: Path) -> Iterator[str]:
    """``recommender serve`` over the demo index (hashing encoder), on a free port."""
    port = _free_port()
    command = [sys.executable, "-m", "recommender", "serve", "--index", str(index)]
    command += ["--port", str(port), "--read-only", "--no-access-log"]
    url = f"http://127.0.0.1:{port}"
    proc = _serve(command, url)
    try:
        yield url
    finally:
        _stop(proc)


def _driver(*, javascript: bool = True) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # A fresh profile each time: nothing cached or remembered between runs.
    profile = tempfile.mkdtemp(prefix="recommender-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,900")
    # The console, where chromium reports what the Content-Security-Policy blocked.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.implicitly_wait(0)
    browser.set_page_load_timeout(WAIT_S)
    browser._recommender_profile = profile  # removed by _quit
    return browser


def _quit(browser: Any) -> None:
    try:
        browser.quit()
    finally:
        shutil.rmtree(browser._recommender_profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _browser_binaries()
    driver = _driver()
    try:
        yield driver
    finally:
        _quit(driver)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("RECOMMENDER_ARTIFACTS_DIR")
    folder = Path(configured) / "browser" if configured else tmp_path_factory.mktemp("artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _screenshot(browser: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    assert browser.save_screenshot(str(path)), path
    assert path.stat().st_size > 5_000
    conftest.ARTIFACTS.append(path)
    return path


def _wait(browser: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_S).until(condition)


def _csp_violations(browser: Any) -> list[str]:
    """What chromium's console said the page's CSP blocked since the last call."""
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]


# Registered on a page once it loaded: every violation from then on (app.js swapping the
# list in, the fetches it makes) lands in window.__cspViolations.
_LISTEN_FOR_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def _related_ids(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    links = browser.find_elements(By.CSS_SELECTOR, "ol.related > li a.related-title")
    return [_id_of(a.get_attribute("href")) for a in links]


def _id_of(href: str) -> str:
    return unquote(href.split("/articles/", 1)[1])


@pytest.fixture(scope="module")
def expected(index: Path) -> Iterator[Recommender]:
    """The library over the same index: what the pages must show."""
    with Recommender.open(index, encoder=HashingEncoder(256)) as rec:
        yield rec


# -- tests -----------------------------------------------------------------------------


def test_home_article_and_related_list(
    server: str, browser: Any, artifacts: Path, expected: Recommender
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    assert browser.title == "Articles · recommender"
    titles = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "ol.articles > li > a")]
    assert titles == [a.title for a in expected.browse(limit=20).articles]
    _screenshot(browser, artifacts, "home")

    search = browser.find_element(By.ID, "q")
    search.send_keys("serevan")
    search.submit()
    _wait(browser, lambda b: "q=serevan" in b.current_url)
    story = expected.get(DEFAULT_STORY)
    browser.find_element(By.LINK_TEXT, story.title).click()
    _wait(browser, lambda b: b.current_url.endswith(f"/articles/{DEFAULT_STORY}"))
    assert browser.find_element(By.TAG_NAME, "h1").text == story.title

    top = expected.related(DEFAULT_STORY, k=10, exclude_story=True)
    assert _related_ids(browser) == [m.id for m in top]
    # The same quake's follow-up is in "More on this story", with its date and section; the
    # Related list beside it is background, each item with its date and score.
    thread = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "ol.thread-list > li")]
    follow_up = expected.get("demo-081")
    assert any(follow_up.title in t and "6 Mar 2026" in t and "World" in t for t in thread)
    assert "demo-081" not in [m.id for m in top]
    first = browser.find_element(By.CSS_SELECTOR, "ol.related > li")
    assert top[0].title in first.text and f"score {top[0].score:.2f}" in first.text
    reason = expected.related(DEFAULT_STORY, k=1, explain=True, exclude_story=True)[0].explanation
    assert reason is not None
    assert first.find_element(By.CLASS_NAME, "reason").text == f"Why: {reason.summary()}"
    # The matching sentences open from the keyboard or the mouse.
    passages = first.find_element(By.TAG_NAME, "details")
    assert not passages.get_attribute("open")
    passages.find_element(By.TAG_NAME, "summary").click()
    assert reason.passages and reason.passages[1] in passages.text
    _screenshot(browser, artifacts, "article-wide")
    browser.set_window_size(390, 844)
    try:
        assert _related_ids(browser) == [m.id for m in top]
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth > window.innerWidth"
        )
        assert not overflow, "the page scrolls sideways on a phone-sized viewport"
        _screenshot(browser, artifacts, "article-phone")
    finally:
        browser.set_window_size(1280, 900)


def test_controls_update_the_list_in_place(
    server: str, browser: Any, expected: Recommender
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    browser.get(f"{server}/articles/{DEFAULT_STORY}")
    browser.execute_script("window.__sameDocument = true")
    k = browser.find_element(By.ID, "k")
    k.send_keys(Keys.CONTROL, "a")
    k.send_keys("3", Keys.TAB)
    _wait(browser, lambda b: len(_related_ids(b)) == 3)
    assert "k=3" in browser.current_url
    status = browser.find_element(By.ID, "live-status")
    assert status.get_attribute("textContent") == "Related list updated: 3 articles."
    Select(browser.find_element(By.ID, "section")).select_by_value("business")
    want = [
        m.id for m in expected.related(DEFAULT_STORY, k=3, section="business", exclude_story=True)
    ]
    _wait(browser, lambda b: _related_ids(b) == want)
    # Swapped in place by app.js: the page itself never reloaded.
    assert browser.execute_script("return window.__sameDocument === true")
    assert "section=business" in browser.current_url


def test_controls_work_without_javascript(server: str, expected: Recommender) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser = _driver(javascript=False)
    try:
        browser.get(f"{server}/articles/{DEFAULT_STORY}")
        Select(browser.find_element(By.ID, "section")).select_by_value("sports")
        browser.find_element(By.CSS_SELECTOR, "form.controls-form button[type=submit]").click()
        _wait(browser, lambda b: "section=sports" in b.current_url)
        want = [
            m.id
            for m in expected.related(DEFAULT_STORY, k=10, section="sports", exclude_story=True)
        ]
        assert _related_ids(browser) == want
    finally:
        _quit(browser)


def test_paste_a_story(server: str, browser: Any, artifacts: Path, expected: Recommender) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    text = "Dockworkers at Valdora port stay on strike as wage talks stall; the cranes are idle."
    browser.get(server + "/similar")
    browser.find_element(By.ID, "story").send_keys(text)
    browser.find_element(By.CSS_SELECTOR, "form.paste-form button[type=submit]").click()
    _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "ol.related > li"))
    want = [m.id for m in expected.similar(text=text, k=10)]
    assert _related_ids(browser) == want
    assert "port" in browser.find_element(By.CSS_SELECTOR, "ol.related > li").text.lower()
    assert "Read as plain story text" in browser.find_element(By.CLASS_NAME, "read-as").text
    _screenshot(browser, artifacts, "paste-results")
    # The options re-run the pasted story in place too.
    k = browser.find_element(By.ID, "k")
    k.send_keys(Keys.CONTROL, "a")
    k.send_keys("2", Keys.TAB)
    _wait(browser, lambda b: _related_ids(b) == want[:2])


def test_keyboard_navigation(server: str, browser: Any, expected: Recommender) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{server}/articles/{DEFAULT_STORY}")
    keys = ActionChains(browser)

    def active() -> Any:
        return browser.switch_to.active_element

    keys.send_keys(Keys.TAB).perform()
    assert active().text == "Skip to main content"
    assert active().value_of_css_property("top") == "8px"  # on screen while focused
    keys.send_keys(Keys.ENTER).perform()
    _wait(browser, lambda b: b.switch_to.active_element.get_attribute("id") == "main")
    # Onward by Tab alone: the story's links, every control, the button, then the list.
    first_related = expected.related(DEFAULT_STORY, k=1, exclude_story=True)[0]
    seen: list[str] = []
    for _ in range(30):
        keys.send_keys(Keys.TAB).perform()
        element = active()
        seen.append(element.get_attribute("id") or element.text)
        if "related-title" in (element.get_attribute("class") or ""):
            break
    else:
        raise AssertionError(f"Tab never reached the related list; focus went {seen}")
    assert {"k", "section", "window", "diversity"} <= set(seen), seen
    assert element.text == first_related.title
    outline = element.value_of_css_property("outline-style")
    assert outline != "none", "no visible focus indicator"
    keys.send_keys(Keys.ENTER).perform()
    _wait(browser, lambda b: b.current_url.endswith(f"/articles/{first_related.id}"))
    # "/" jumps to the title search on the home page.
    browser.get(server + "/")
    browser.find_element(By.TAG_NAME, "body").send_keys("/")
    assert active().get_attribute("id") == "q"


def test_pages_run_under_their_content_security_policy(
    server: str, browser: Any, expected: Recommender
) -> None:
    """The strict CSP is sent, and nothing on the pages (app.js included) trips it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with httpx.Client(base_url=server, timeout=WAIT_S) as http:
        policy = http.get(f"/articles/{DEFAULT_STORY}").headers["content-security-policy"]
    assert policy.startswith("default-src 'self';") and "frame-ancestors 'none'" in policy
    _csp_violations(browser)  # start from an empty console
    for path in ("/", f"/articles/{DEFAULT_STORY}", "/similar", "/articles/no-such-story"):
        browser.get(server + path)
        assert browser.find_element(By.TAG_NAME, "h1").text, path
        assert not _csp_violations(browser), path
    # app.js at work: a control change fetches the list and swaps it in.
    browser.get(f"{server}/articles/{DEFAULT_STORY}")
    browser.execute_script(_LISTEN_FOR_VIOLATIONS)
    k = browser.find_element(By.ID, "k")
    k.send_keys(Keys.CONTROL, "a")
    k.send_keys("4", Keys.TAB)
    _wait(browser, lambda b: len(_related_ids(b)) == 4)
    assert browser.execute_script("return window.__cspViolations") == []
    assert not _csp_violations(browser)
    # The stylesheet applied (a blocked one would leave the skip link on screen).
    skip = browser.find_element(By.CLASS_NAME, "skip-link")
    assert skip.value_of_css_property("top") == "-48px"  # off screen until focused


def test_docs_pages_inline_code_passes_their_policy(server: str, browser: Any) -> None:
    """/docs runs one inline script (allowed by its hash) and /redoc one inline style.

    Their Swagger UI and ReDoc bundles come from a CDN, which this offline browser cannot
    reach: what is checked is that nothing of the page itself is blocked by its CSP.
    """
    _csp_violations(browser)
    for path in ("/docs", "/redoc"):
        browser.get(server + path)
        assert not _csp_violations(browser), path


# -- the embeddable widget on another site ----------------------------------------------

_HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A news site</title>
<link rel="canonical" href="{canonical}"></head>
<body><h1>A story on another site</h1>
<div id="related" data-recommender-related data-k="4"></div>
<p id="footer">The rest of the page.</p>
<script src="{service}/widget.js" async></script>
</body></html>
"""


def _serve(command: list[str], base_url: str) -> subprocess.Popen[bytes]:
    """Start ``recommender serve`` and wait until it answers at ``base_url``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("RECOMMENDER_API_TOKEN", None)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with httpx.Client(base_url=base_url, timeout=2) as http:
        _wait_ready(http, proc)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def host_site(tmp_path_factory: pytest.TempPathFactory, index: Path) -> Iterator[tuple[str, str]]:
    """A page on one loopback origin and the service (--allow-origin it) on another."""
    import shutil as files

    copy = tmp_path_factory.mktemp("widget") / "demo"
    files.copytree(index, copy)  # the events this test records stay out of the shared index
    host_port, service_port = _free_port(), _free_port()
    host, service = f"http://127.0.0.1:{host_port}", f"http://127.0.0.1:{service_port}"
    folder = tmp_path_factory.mktemp("host")
    story = next(a for a in demo_articles() if a.id == DEFAULT_STORY)
    (folder / "story.html").write_text(_HOST_PAGE.format(canonical=story.url, service=service))
    site = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(host_port), "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    command = [sys.executable, "-m", "recommender", "serve", "--index", str(copy)]
    command += ["--port", str(service_port), "--no-access-log", "--allow-origin", host]
    proc = _serve(command, service)
    try:
        with httpx.Client(timeout=2) as http:
            _wait_until_up(http, f"{host}/story.html")
        yield host, service
    finally:
        _stop(proc)
        site.terminate()
        site.wait()


def _wait_until_up(http: httpx.Client, url: str) -> None:
    import time

    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if http.get(url).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


def _uncaught(browser: Any) -> list[str]:
    """Script errors the page did not catch (failed requests are reported apart)."""
    return [e["message"] for e in browser.get_log("browser") if "Uncaught" in e["message"]]


def test_the_widget_renders_the_list_and_reports_clicks(
    host_site: tuple[str, str], browser: Any, expected: Recommender, artifacts: Path
) -> None:
    from selenium.webdriver.common.by import By

    host, service = host_site
    browser.get_log("browser")  # start from an empty console
    browser.get(f"{host}/story.html")
    _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".recommender-related__link"))
    links = browser.find_elements(By.CSS_SELECTOR, ".recommender-related__link")
    shown = [link.get_attribute("data-recommender-id") for link in links]
    api = httpx.get(
        f"{service}/v1/related",
        params={
            "url": browser.execute_script(
                "return document.querySelector('link[rel=canonical]').href"
            ),
            "k": 4,
        },
    ).json()
    assert (
        shown
        == [m["id"] for m in api["related"]]
        == [m.id for m in expected.related(DEFAULT_STORY, k=4)]
    )
    section = browser.find_element(By.CSS_SELECTOR, "section.recommender-related")
    assert section.get_attribute("aria-label") == "Related"
    _screenshot(browser, artifacts, "widget-on-a-host-page")
    target = links[0].get_attribute("href")
    # Follow the click's report, not the navigation: the link leaves for another site.
    browser.execute_script(
        "arguments[0].addEventListener('click', function (e) { e.preventDefault(); });", links[0]
    )
    links[0].click()
    _wait(browser, lambda b: _events(service, "click"))
    clicks = _events(service, "click")
    assert clicks == [(DEFAULT_STORY, shown[0], 1)] and target.startswith("https://")
    assert len(_events(service, "impression")) == len(shown)
    assert _uncaught(browser) == []


def _events(service: str, kind: str) -> list[tuple[str, str, int]]:
    import sqlite3

    root = httpx.get(f"{service}/v1/info").json()["path"]
    with sqlite3.connect(Path(root) / "events.sqlite3") as db:
        found = db.execute(
            "SELECT article_id, related_id, position FROM events WHERE type = ? ORDER BY rowid",
            (kind,),
        ).fetchall()
    return [(str(a), str(r), int(p)) for a, r, p in found]


def test_the_page_survives_a_service_that_is_down(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    host_port, dead_port = _free_port(), _free_port()  # nothing listens on dead_port
    page = _HOST_PAGE.format(
        canonical="https://example.com/x", service=f"http://127.0.0.1:{dead_port}"
    )
    (tmp_path / "story.html").write_text(page)
    site = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(host_port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(timeout=2) as http:
            _wait_until_up(http, f"http://127.0.0.1:{host_port}/story.html")
        browser.get_log("browser")
        browser.get(f"http://127.0.0.1:{host_port}/story.html")
        assert browser.find_element(By.ID, "footer").text == "The rest of the page."
        assert browser.find_element(By.ID, "related").text == ""
        assert _uncaught(browser) == []
    finally:
        site.terminate()
        site.wait()
