"""The try-it page in a real browser: Playwright drives Debian's headless Chromium against the
real server (uvicorn on a free loopback port) serving a small trained model.

Playwright's own browser download is never used: ``scripts/install_browser.sh`` (run by
``scripts/test.sh``) installs Debian's chromium with apt-get. The test skips only where apt-get
is not allowed, and says so; where apt-get could install chromium it fails instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from neuralrec.serving import create_app
from serving_helpers import TITLES, train, write_run

CHROMIUM = Path("/usr/bin/chromium")
# the flags this kind of machine needs (no sandbox as root, no background network calls)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _apt_get_allowed() -> bool:
    if shutil.which("apt-get") is None:
        return False
    if os.geteuid() == 0:
        return True
    sudo = shutil.which("sudo")
    return (
        sudo is not None
        and subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0
    )


def _require_browser() -> None:
    if CHROMIUM.exists():
        return
    if _apt_get_allowed():
        pytest.fail(
            "Debian chromium is missing although apt-get is allowed here: "
            "run `bash scripts/install_browser.sh` (scripts/test.sh does)"
        )
    pytest.skip(
        "browser test skipped: /usr/bin/chromium is missing and apt-get is not allowed here"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a real uvicorn server in a thread; yields its base URL."""
    import uvicorn

    app = create_app(write_run(train("biased-mf"), tmp_path_factory.mktemp("browser") / "run"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def _titles(rows):
    return [r["title"] for r in rows]


def test_search_like_and_see_recommendations_and_similar_movies(server, tmp_path):
    _require_browser()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[dev]'")

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server + "/")
            expect(page.locator("#model-info")).to_contain_text("biased-mf")

            page.fill("#search", "toy")
            results = page.locator("#search-results li")
            expect(results).to_have_count(2)
            expect(results.first).to_contain_text("Toy")

            results.filter(has_text=TITLES[1]).get_by_role("button", name="Like").click()
            expect(page.locator("#liked li")).to_have_text([f"{TITLES[1]}Remove"])
            expect(page.locator("#recommendations-heading")).to_have_text("Recommended for you")
            expect(page.locator("#similar-heading")).to_have_text(f"Similar to {TITLES[1]}")

            # the page shows exactly what the API answers
            recs = httpx.post(server + "/recommend", json={"items": [1], "k": 10}).json()
            similar = httpx.get(server + "/similar/1?k=10").json()
            expect(page.locator("#recommendations li .title")).to_have_text(_titles(recs["items"]))
            expect(page.locator("#similar li .title")).to_have_text(_titles(similar["similar"]))

            # like a recommended movie too: both liked items feed the recommendations
            first = recs["items"][0]
            page.locator("#recommendations li").first.get_by_role("button", name="Like").click()
            expect(page.locator("#liked li")).to_have_count(2)
            both = httpx.post(server + "/recommend", json={"items": [1, first["item"]]}).json()
            expect(page.locator("#recommendations li .title")).to_have_text(_titles(both["items"]))
            expect(page.locator("#similar-heading")).to_have_text(f"Similar to {first['title']}")
        finally:
            browser.close()
    assert not errors, errors


def test_without_chromium_it_skips_only_where_apt_get_is_not_allowed(monkeypatch, tmp_path):
    here = sys.modules[__name__]
    monkeypatch.setattr(here, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setattr(here, "_apt_get_allowed", lambda: False)
    with pytest.raises(pytest.skip.Exception, match="apt-get is not allowed"):
        here._require_browser()
    monkeypatch.setattr(here, "_apt_get_allowed", lambda: True)
    with pytest.raises(pytest.fail.Exception, match=r"install_browser\.sh"):
        here._require_browser()
