"""The page at GET / in a real browser: Debian's chromium, headless, driven by Selenium through
/usr/bin/chromedriver (never Selenium Manager, which would download a browser), against a real
server on loopback serving the shipped models/default.

What is checked is what a person sees: the model card, a label and a bar per class for each text,
the tokens shaded for and against, the n-gram shown on hover or keyboard focus, and messages for an
empty text, a text too long and a server that has gone; typed markup stays text and never runs.
Skipped when chromium, chromedriver or selenium is absent (.ci/run installs the first two).
Set TEXTCNN_PAGE_SCREENSHOT=docs/page.png to write the README's screenshot.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("litserve", reason="the serve extra is not installed")
httpx = pytest.importorskip("httpx")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(
        f"no {CHROMIUM} or {CHROMEDRIVER} (apt-get install chromium chromium-driver)", allow_module_level=True
    )
pytest.importorskip("selenium", reason="selenium is not installed (the dev extra)")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from test_service_e2e import serving, stop  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "models" / "default"
MAX_CHARS = 300
GOOD, BAD = "a gorgeous , witty , seductive movie .", "the plot is thin and the jokes fall flat ."


@pytest.fixture(scope="module")
def url():
    args = ["--model", str(DEFAULT), "--max-text-chars", str(MAX_CHARS), "--num-api-servers", "1"]
    with serving(*args, "--log-level", "warning") as (_, url):
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1000,1400",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages, CSP reports
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(browser, seconds: float = 15) -> WebDriverWait:
    return WebDriverWait(browser, seconds)


def open_page(browser, url: str) -> None:
    browser.get(url + "/")
    browser.get_log("browser")  # start each test with an empty console
    wait(browser).until(lambda b: b.find_element(By.CSS_SELECTOR, "#card dl").is_displayed())


def submit(browser, *lines: str, keyboard: bool = True) -> None:
    """Type the lines into the box (Enter between them) and explain them: Ctrl+Enter, or the button."""
    box = browser.find_element(By.ID, "texts")
    box.clear()
    for i, line in enumerate(lines):
        if i:
            box.send_keys(Keys.ENTER)
        box.send_keys(line)
    if keyboard:
        box.send_keys(Keys.CONTROL, Keys.ENTER)
    else:
        browser.find_element(By.ID, "submit").click()


def results(browser, n: int) -> list:
    return wait(browser).until(
        lambda b: (
            (found := b.find_elements(By.CSS_SELECTOR, "#results .result")) and len(found) == n and found
        )
    )


def message(browser) -> str:
    element = wait(browser).until(ec.visibility_of_element_located((By.ID, "message")))
    return element.text


def console_errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def no_alert(browser) -> bool:
    try:
        browser.switch_to.alert.dismiss()
    except NoAlertPresentException:
        return True
    return False


def test_the_model_card_tells_what_is_served(browser, url):
    open_page(browser, url)
    card = browser.find_element(By.ID, "card").text
    info = httpx.get(f"{url}/info").json()["model"]
    assert "Dataset\nmr" in card and "Pooling\nmax" in card and f"Variant\n{info['model']['variant']}" in card
    assert f"Test accuracy\n{100 * info['metrics']['test']['accuracy']:.1f}%" in card
    assert f"Vocabulary\n{info['vocab_size']:,} words" in card and info["id"] in card
    assert console_errors(browser) == []


def test_each_text_gets_its_label_bars_and_shaded_tokens(browser, url):
    open_page(browser, url)
    started = time.monotonic()
    submit(browser, GOOD, BAD)
    good, bad = results(browser, 2)
    elapsed = time.monotonic() - started
    assert good.find_element(By.CSS_SELECTOR, "h2").text.startswith("positive")
    assert bad.find_element(By.CSS_SELECTOR, "h2").text.startswith("negative")
    expected = httpx.post(f"{url}/explain", json={"texts": [GOOD, BAD]}).json()["explanations"]
    for result, explanation in zip((good, bad), expected, strict=True):
        bars = result.find_elements(By.CSS_SELECTOR, ".bar")
        assert sorted(bar.get_attribute("aria-label").split()[0] for bar in bars) == ["negative", "positive"]
        fill = result.find_element(By.CSS_SELECTOR, ".bar .fill.top")
        share = explanation["probabilities"][explanation["label"]]
        assert fill.size["width"] == pytest.approx(share * bars[0].size["width"], abs=2)
        tokens = result.find_elements(By.CSS_SELECTOR, ".sentence .token")
        assert [token.text for token in tokens] == explanation["tokens"]
        for token, part in zip(tokens, explanation["token_parts"], strict=True):
            assert float(token.get_attribute("data-part")) == pytest.approx(part)
            assert token.get_attribute("class").split()[1] == ("for" if part >= 0 else "against")
            assert token.value_of_css_property("background-color") not in ("rgba(0, 0, 0, 0)", "transparent")
    good_tokens = good.find_elements(By.CSS_SELECTOR, ".sentence .token")
    strongest = max(range(len(good_tokens)), key=lambda i: expected[0]["token_parts"][i])
    assert good_tokens[strongest].value_of_css_property("background-color") != good_tokens[
        min(range(len(good_tokens)), key=lambda i: abs(expected[0]["token_parts"][i]))
    ].value_of_css_property("background-color")
    assert elapsed < 10, elapsed
    assert console_errors(browser) == []


def test_hover_and_keyboard_focus_show_the_ngram(browser, url):
    open_page(browser, url)
    submit(browser, GOOD, keyboard=False)
    (result,) = results(browser, 1)
    explanation = httpx.post(f"{url}/explain", json={"text": GOOD}).json()["explanations"][0]
    best = explanation["for"][0]
    tokens = result.find_elements(By.CSS_SELECTOR, ".sentence .token")
    detail = result.find_element(By.CSS_SELECTOR, ".detail")
    webdriver.ActionChains(browser).move_to_element(tokens[best["start"]]).perform()
    assert f"“{explanation['tokens'][best['start']]}”" in detail.text
    # a CNN member's window names its feature map; the linear member's n-gram, its member and kind
    assert "feature map" in detail.text or "(nbsvm member 5, a " in detail.text
    assert tokens[best["start"]].get_attribute("title") == detail.text
    if best["member"] is not None:  # the shipped model is an ensemble: the n-gram names its member
        assert "members' weighted mean logit" in detail.text
    # The keyboard: Tab from the button reaches the first token, then the next.
    browser.find_element(By.ID, "submit").send_keys(Keys.TAB)
    assert browser.switch_to.active_element == tokens[0]
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element == tokens[1]
    assert detail.text.startswith(f"“{explanation['tokens'][1]}”: ")
    part = explanation["token_parts"][1]
    assert (
        f"{abs(part):.3f}" in detail.text
        and ("for positive" if part >= 0 else "against positive") in detail.text
    )
    lists = result.find_element(By.CSS_SELECTOR, ".ngrams").text
    assert f"“{best['ngram']}”" in lists


def test_an_empty_text_and_a_text_too_long_are_messages(browser, url):
    open_page(browser, url)
    submit(browser, "   ", keyboard=False)
    assert "empty" in message(browser)
    submit(browser, "fine", "x" * (MAX_CHARS + 1))
    text = wait(browser).until(lambda b: "characters" in message(b) and message(b))
    assert text == f"Not accepted: line 2 has {MAX_CHARS + 1} characters; at most {MAX_CHARS}"
    assert browser.find_element(By.ID, "form").is_displayed()  # the page is still there
    submit(browser, GOOD)  # and it works again; the message goes
    results(browser, 1)
    assert not browser.find_element(By.ID, "message").is_displayed()


def test_typed_markup_stays_text_and_never_runs(browser, url):
    open_page(browser, url)
    probes = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script> <b onmouseover=alert(3)>bold</b>"]
    submit(browser, *probes)
    shown = results(browser, 2)
    for result in shown:
        tokens = result.find_elements(By.CSS_SELECTOR, ".sentence .token")
        for token in tokens[:3]:  # where an onmouseover would fire, had it become markup
            webdriver.ActionChains(browser).move_to_element(token).perform()
    assert no_alert(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "#results img, #results script, #results b") == []
    assert browser.execute_script("return document.images.length") == 0
    explanations = httpx.post(f"{url}/explain", json={"texts": probes}).json()["explanations"]
    for result, explanation in zip(shown, explanations, strict=True):
        sentence = result.find_element(By.CSS_SELECTOR, ".sentence").text
        assert sentence == " ".join(explanation["tokens"])
        assert result.find_element(By.CSS_SELECTOR, ".typed q").text == explanation["text"]  # as typed
    assert console_errors(browser) == []


def test_the_page_reads_at_phone_width(browser, url):
    browser.set_window_size(390, 844)
    try:
        open_page(browser, url)
        submit(browser, GOOD + " " + BAD)
        results(browser, 1)
        width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], width  # nothing wider than the screen: no sideways scrolling
    finally:
        browser.set_window_size(1000, 1400)


def test_screenshot(browser, url, tmp_path):
    """What docs/page.png shows: the shipped model on three sentences."""
    browser.set_window_size(1000, 1500)
    open_page(browser, url)
    submit(
        browser,
        GOOD,
        BAD,
        "not a bad film , but not a good one either .",
    )
    (first, *_) = results(browser, 3)
    tokens = first.find_elements(By.CSS_SELECTOR, ".sentence .token")
    tokens[3].click()  # focus "witty": its detail line shows
    target = Path(os.environ.get("TEXTCNN_PAGE_SCREENSHOT") or tmp_path / "page.png")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1000, min(height + 120, 2400))
    assert browser.save_screenshot(str(target))
    assert target.stat().st_size > 10_000


def test_a_server_that_has_gone_is_a_message(browser, tiny_bundle):
    with serving("--model", str(tiny_bundle), "--log-level", "warning") as (process, url):
        open_page(browser, url)
        submit(browser, "a warm , funny film .")
        results(browser, 1)
        code, output = stop(process)
    assert code == 0, output
    submit(browser, "still there ?")
    assert "cannot be reached" in message(browser)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results .result")) == 1  # the last answer stays


def test_the_pooling_says_what_it_is_on_hover(browser, url):
    """The card's pooling carries the registry's one-line summary (GET /info's `pooling`)."""
    from textcnn.model.pooling import get_pooling

    open_page(browser, url)
    pooling = browser.find_element(
        By.XPATH, "//*[@id='card']//dt[normalize-space()='Pooling']/following-sibling::dd"
    )
    assert pooling.text == "max" and pooling.get_attribute("title") == get_pooling("max").summary
    assert console_errors(browser) == []


def test_a_mixed_bundle_shows_its_members_and_what_each_said(browser, tiny_mixed):
    """The card lists the members by kind; each explanation says what each kind of member said."""
    with serving("--model", str(tiny_mixed), "--log-level", "warning", "--num-api-servers", "1") as (
        process,
        url,
    ):
        open_page(browser, url)
        card = browser.find_element(By.ID, "card").text
        assert "Pooling\nmax+avg" in card and "Members\nmax ×2, avg, nbsvm" in card
        submit(browser, "a warm , funny film .")
        (result,) = results(browser, 1)
        said = result.find_element(By.CSS_SELECTOR, ".members").text
        assert "What the members said" in said
        for kind in ("max pooling ×2 (weight", "avg pooling (weight", "nbsvm (weight"):
            assert kind in said
        assert console_errors(browser) == []
        stop(process)
