"""The page in a real browser: Debian's Chromium, headless, driven by Playwright.

    pytest tests/test_browser.py                                  # screenshot in tmp_path
    RECOCHAT_SCREENSHOT=docs/screenshot.png pytest tests/test_browser.py   # and a copy there

Needs `/usr/bin/chromium` (`apt-get install -y chromium`); skipped with that reason if absent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TURN_TIMEOUT_MS = 300_000  # one turn on a busy 2-CPU box, reasons included


@pytest.fixture(scope="module")
def page_url(launch_app, recommender):
    from chatbot.serving.feedback import FeedbackStore

    settings = recommender.settings
    return launch_app(settings, recommender, FeedbackStore(settings.feedback_db))


@pytest.fixture
def page():
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def ask(page, text: str) -> tuple[int, list[str]]:
    """Send `text`; wait for the next turn's cards with reasons; return (turn, item ids)."""
    shown = "(document.querySelector('#cards .picks')?.dataset.turn ?? '0')"
    before = page.evaluate(shown)
    page.fill("#message textarea", text)
    page.press("#message textarea", "Enter")
    page.wait_for_function(
        f"(before) => {shown} !== before && "
        "document.querySelector('#cards .picks').dataset.stage === 'done'",
        arg=before,
        timeout=TURN_TIMEOUT_MS,
    )
    ids = page.eval_on_selector_all("#cards .card", "cards => cards.map(c => c.dataset.itemId)")
    return int(page.evaluate(shown)), ids


def ask_question(page, text: str, expected: str) -> None:
    """Send a question; wait until the chat shows `expected` (the answer) and the page is idle."""
    page.fill("#message textarea", text)
    page.press("#message textarea", "Enter")
    page.wait_for_function(
        "(want) => document.querySelector('#chatbot').innerText.includes(want)",
        arg=expected,
        timeout=TURN_TIMEOUT_MS,
    )
    page.wait_for_function(
        "!document.querySelector('#chatbot .generating, #chatbot .pending')",
        timeout=TURN_TIMEOUT_MS,
    )


def card(item_id: str) -> str:
    return f'#cards .card[data-item-id="{item_id}"]'


def chips(page) -> list[str]:
    return page.eval_on_selector_all("#filters .chip", "cs => cs.map(c => c.dataset.filter)")


def test_chat_vote_and_filters_in_a_browser(page, page_url, demo_catalog, tmp_path, pytestconfig):
    page.goto(page_url)
    page.wait_for_selector("#message textarea")
    assert page.locator("#cards .empty").is_visible()

    turn, first = ask(page, "Something like Heat but less violent, after 2000")
    assert turn == 1 and len(first) == 5 and all(i in demo_catalog for i in first)
    assert page.locator("#cards .reason.pending").count() == 0  # reasons filled in
    title = page.inner_text(f"{card(first[0])} .title")
    assert title == demo_catalog[first[0]]["title"]
    assert title in page.inner_text("#chatbot")
    assert chips(page) == ["from 2001", "less violent"]

    page.click(f'{card(first[1])} button[data-signal="up"]')
    page.wait_for_selector(f"{card(first[1])}.voted-up")
    page.click(f'{card(first[0])} button[data-signal="down"]')
    page.wait_for_selector(f"{card(first[0])}.voted-down")

    # A question about a card is answered from its record; the cards and chips stay.
    second_title = demo_catalog[first[1]]["title"]
    runtime = demo_catalog[first[1]]["runtime_min"]
    ask_question(page, "how long is the second one?", f"{runtime} minutes")
    assert second_title in page.inner_text("#chatbot").split("how long is the second one?")[-1]
    assert page.eval_on_selector_all("#cards .card", "cs => cs.map(c => c.dataset.itemId)") == first
    assert chips(page) == ["from 2001", "less violent"]

    page.evaluate("document.fonts.ready")
    shot = tmp_path / "screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    if target := os.environ.get("RECOCHAT_SCREENSHOT"):  # relative to where pytest was run
        target = pytestconfig.invocation_params.dir / target
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)

    turn, second = ask(page, "Something else, maybe a bit lighter")
    assert turn == 2 and second and first[0] not in second  # 👎 item is gone ...
    assert not set(first) & set(second)  # ... and nothing shown is repeated

    page.click('#filters .chip[data-filter="less violent"]')
    page.wait_for_function("!document.querySelector('#filters [data-filter=\"less violent\"]')")
    assert chips(page) == ["from 2001"]

    page.click("#start-over")
    page.wait_for_selector("#cards .empty")
    assert chips(page) == []
    assert "Traceback" not in page.content()


def test_each_tab_has_its_own_session(page, page_url):
    page.goto(page_url)
    page.wait_for_selector("#message textarea")
    assert ask(page, "A mind-bending sci-fi film, no horror")[0] == 1
    other = page.context.new_page()
    other.goto(page_url)
    other.wait_for_selector("#message textarea")
    assert other.locator("#cards .empty").is_visible()
    assert ask(other, "A funny animated movie for kids")[0] == 1  # its own first turn
    assert chips(other) == ["only comedy", "only animation", "for kids"]
    assert chips(page) == ["only sci-fi", "no horror"]
