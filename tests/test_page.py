"""The page at GET / in a real browser: Debian's chromium, headless, driven by Selenium through
/usr/bin/chromedriver (never Selenium Manager, which would download a browser), against a real
server on loopback serving the shipped models/default (which reads ASCII English only), and one on a
tiny bundle trained here with the unicode tokenizer (which reads Chinese, a token per character).

What is checked is what a person sees: the model card (its tokenizer too), a label and a bar per
class for each text, the text in its own characters with each token's span shaded for and against
(as strongly as its part is large next to the logit), words the model does not know marked, how much
of each text it knows, a notice instead of a label for a text it cannot read, right-to-left scripts
read right to left, the n-gram shown on hover or keyboard focus, and messages for an empty text, a
text too long and a server that has gone; typed markup stays text and never runs.
Skipped when chromium, chromedriver or selenium is absent (.ci/run installs them, and the Noto fonts
that draw Chinese and Arabic).
Set TEXTCNN_PAGE_SCREENSHOT=docs/page.png to write the README's screenshot, and TEXTCNN_PAGE_MODEL
to the bundle it shows (models/default unless set).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("litserve", reason="the serve extra is not installed")
httpx = pytest.importorskip("httpx")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(
        f"no {CHROMIUM} or {CHROMEDRIVER} (apt-get install chromium chromium-driver fonts-noto-cjk fonts-noto-core)",
        allow_module_level=True,
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
from test_service_multilabel import TEXTS as EMOTIONS  # noqa: E402
from test_service_multilabel import train_multilabel_bundle  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "models" / "default"
MAX_CHARS = 300
GOOD, BAD = "a gorgeous , witty , seductive movie .", "the plot is thin and the jokes fall flat ."
CHINESE, ARABIC = "这是一部很好看的电影。", "فيلم جميل وذكي ومغر."
# The shade's rule (app.js): alpha = FULL * min(1, |part| / max(|logit|, 1)), blue for, red against.
FULL = 0.7


@pytest.fixture(scope="module")
def url():
    args = ["--model", str(DEFAULT), "--max-text-chars", str(MAX_CHARS), "--num-api-servers", "1"]
    with serving(*args, "--log-level", "warning") as (_, url):
        yield url


@pytest.fixture(scope="module")
def unicode_bundle(tmp_path_factory) -> Path:
    """A tiny bundle that reads Chinese (the unicode tokenizer), trained here in a second or so."""
    import textcnn

    positive = ["这部电影很好看", "演员很棒,故事感人", "a warm , funny film", "我很喜欢这个故事"]
    negative = ["这部电影很无聊", "故事太差了", "a dull , flat film", "我不喜欢这个演员"]
    texts, labels = positive + negative, ["positive"] * 4 + ["negative"] * 4
    settings = textcnn.RunSettings(
        {"embedding_dim": 8, "num_filters": 4}, textcnn.TrainConfig(epochs=1), tokenizer="unicode"
    )
    fold = textcnn.texts_fold((texts, labels), (texts, labels))
    outcome = textcnn.train_classifier(fold, ["negative", "positive"], settings, progress=False)
    out = tmp_path_factory.mktemp("unicode") / "zh"
    outcome.classifier.save(out)
    return out


@pytest.fixture(scope="module")
def unicode_server(unicode_bundle):
    """A server on `unicode_bundle`: (process, url). Its last test stops it (a server that has gone);
    one server for both, since starting one takes the longest here."""
    args = ["--model", str(unicode_bundle), "--num-api-servers", "1", "--log-level", "warning"]
    with serving(*args) as (process, url):
        yield process, url


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


def paste(browser, *lines: str) -> None:
    """Put the lines in the box as a paste would (chromedriver types no character beyond the BMP,
    such as an emoji) and explain them with Ctrl+Enter."""
    box = browser.find_element(By.ID, "texts")
    browser.execute_script("arguments[0].value = arguments[1]", box, "\n".join(lines))
    box.send_keys(Keys.CONTROL, Keys.ENTER)


def results(browser, n: int) -> list:
    return wait(browser).until(
        lambda b: (
            (found := b.find_elements(By.CSS_SELECTOR, "#results .result")) and len(found) == n and found
        )
    )


def message(browser) -> str:
    element = wait(browser).until(ec.visibility_of_element_located((By.ID, "message")))
    return element.text


def shade(element) -> tuple[tuple[int, int, int], float]:
    """An element's computed background: its colour and its opacity (alpha)."""
    colour = element.value_of_css_property("background-color")
    found = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, ([\d.e-]+))?\)", colour)
    assert found, colour
    return (int(found[1]), int(found[2]), int(found[3])), float(found[4] or 1)


def pieces(browser, sentence) -> list[tuple[str, str]]:
    """What a shown text is made of, in order: ("token", its characters) or ("text", what lies between)."""
    return [
        tuple(piece)
        for piece in browser.execute_script(
            "return Array.from(arguments[0].childNodes, (n) =>"
            " [n.nodeType === Node.TEXT_NODE ? 'text' : n.className.split(' ')[0], n.textContent])",
            sentence,
        )
    ]


def expected_pieces(explanation: dict) -> list[tuple[str, str]]:
    """The same from /explain's spans: Python's str offsets are the code points the spans count."""
    text, found, cursor = explanation["text"], [], 0
    for start, end in explanation["spans"]:
        if start > cursor:
            found.append(("text", text[cursor:start]))
        found.append(("token", text[start:end]))
        cursor = end
    return found + ([("text", text[cursor:])] if cursor < len(text) else [])


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
    tokenizer = info["tokenizer"]  # its name, and in words what it keeps (which texts it can read)
    assert f"Tokenizer\n{tokenizer['spelled']}" in card and tokenizer["summary"] in card
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
        assert [token.text for token in tokens] == explanation["tokens"]  # lowercase English: as typed
        assert (
            result.find_element(By.CSS_SELECTOR, ".coverage").text == "100% of its words known to the model"
        )
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
        sentence = result.find_element(By.CSS_SELECTOR, ".sentence")
        assert sentence.text == explanation["text"]  # as typed, markup and all
        assert pieces(browser, sentence) == expected_pieces(explanation)
    assert console_errors(browser) == []


def test_shades_are_as_strong_as_the_part_is_next_to_the_logit(browser, url):
    """Not scaled to the text's own largest part: a part of half the logit is half strength."""
    open_page(browser, url)
    submit(browser, GOOD, BAD)
    shown = results(browser, 2)
    explanations = httpx.post(f"{url}/explain", json={"texts": [GOOD, BAD]}).json()["explanations"]
    for result, explanation in zip(shown, explanations, strict=True):
        tokens = result.find_elements(By.CSS_SELECTOR, ".sentence .token")
        parts, scale = explanation["token_parts"], max(abs(explanation["logit"]), 1)
        shades = [shade(token) for token in tokens]
        for (colour, alpha), part in zip(shades, parts, strict=True):
            assert colour == ((33, 102, 172) if part >= 0 else (214, 96, 77))  # blue for, red against
            assert alpha == pytest.approx(FULL * min(1, abs(part) / scale), abs=0.005)
        strong = max(range(len(parts)), key=lambda i: abs(parts[i]))
        weak = min(range(len(parts)), key=lambda i: abs(parts[i]))
        assert shades[weak][1] < shades[strong][1] / 5  # faint evidence looks faint
        # The text's largest part, well under its logit, is well under full strength.
        assert abs(parts[strong]) < 0.6 * scale, explanation  # what the shipped model gives these two
        assert shades[strong][1] < 0.6 * FULL


def test_the_text_keeps_its_own_characters_and_an_emoji_shifts_nothing(browser, url):
    """The spans are code points: an emoji (two UTF-16 units in JS) before a word must not shift it."""
    text = "😀 Gorgeous ,  WITTY film 🎬 … ‘really’ ."
    open_page(browser, url)
    paste(browser, text)
    (result,) = results(browser, 1)
    explanation = httpx.post(f"{url}/explain", json={"text": text}).json()["explanations"][0]
    assert explanation["tokens"][:4] == ["gorgeous", ",", "witty", "film"]  # what kim makes of it
    sentence = result.find_element(By.CSS_SELECTOR, ".sentence")
    assert pieces(browser, sentence) == expected_pieces(explanation)  # its spelling and spacing, in order
    assert pieces(browser, sentence)[:2] == [("text", "😀 "), ("token", "Gorgeous")]
    tokens = result.find_elements(By.CSS_SELECTOR, ".sentence .token")
    assert [token.text for token in tokens[:4]] == ["Gorgeous", ",", "WITTY", "film"]
    assert tokens[0].get_attribute("title").startswith("“Gorgeous”, read as “gorgeous”: ")
    assert console_errors(browser) == []


def test_coverage_is_shown_and_unknown_words_look_unknown(browser, url):
    partly, little = "a gorgeous película", "quelle belle journée au cinéma"
    open_page(browser, url)
    submit(browser, partly, little)
    shown = results(browser, 2)
    explanations = httpx.post(f"{url}/explain", json={"texts": [partly, little]}).json()["explanations"]
    assert [round(e["coverage"], 2) for e in explanations] == [0.8, 0.22]  # kim drops í and é
    coverage = [result.find_element(By.CSS_SELECTOR, ".coverage") for result in shown]
    assert coverage[0].text == "80% of its words known to the model"
    assert "low" not in coverage[0].get_attribute("class").split()
    assert coverage[1].text.startswith("Only 22% of its words known to the model")
    assert "low" in coverage[1].get_attribute("class").split()
    assert shade(coverage[1])[1] > 0 and shade(coverage[0])[1] == 0  # the warning has its own background
    tokens = shown[1].find_elements(By.CSS_SELECTOR, ".sentence .token")
    known = explanations[1]["known"]
    assert True in known and False in known
    colours = {True: set(), False: set()}
    for token, is_known in zip(tokens, known, strict=True):
        assert ("unknown" in token.get_attribute("class").split()) == (not is_known)
        assert ("not in the model's vocabulary" in token.get_attribute("title")) == (not is_known)
        assert (token.value_of_css_property("text-decoration-style") == "dotted") == (not is_known)
        colours[is_known].add(token.value_of_css_property("color"))
    assert colours[True].isdisjoint(colours[False])  # greyed
    assert console_errors(browser) == []


def test_a_text_the_model_cannot_read_has_no_label_and_arabic_reads_right_to_left(browser, url):
    """models/default reads ASCII English only (kim): Chinese and Arabic are unread by it."""
    open_page(browser, url)
    submit(browser, CHINESE, ARABIC, GOOD)
    chinese, arabic, good = results(browser, 3)
    for result, text in ((chinese, CHINESE), (arabic, ARABIC)):
        assert result.find_element(By.CSS_SELECTOR, "h2").text.endswith(
            "Not read: none of its words are known to this model"
        )
        assert "kim tokenizer" in result.text  # why, in the tokenizer's words
        assert result.find_elements(By.CSS_SELECTOR, ".label, .score, .bars, .bar, .ngrams, .check") == []
        sentence = result.find_element(By.CSS_SELECTOR, ".sentence")
        assert sentence.text == text
        assert result.find_elements(By.CSS_SELECTOR, ".token") == []  # no shade, not even of an <unk>
    assert good.find_element(By.CSS_SELECTOR, "h2").text.startswith("positive")
    direction = [
        r.find_element(By.CSS_SELECTOR, ".sentence").value_of_css_property("direction")
        for r in results(browser, 3)
    ]
    assert direction == ["ltr", "rtl", "ltr"]
    box = browser.find_element(By.ID, "texts")
    box.clear()
    box.send_keys(ARABIC)
    assert box.value_of_css_property("direction") == "rtl"
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


def test_screenshot(browser, request, tmp_path):
    """What docs/page.png shows: TEXTCNN_PAGE_MODEL (models/default unless set) on four scripts."""
    model = Path(os.environ.get("TEXTCNN_PAGE_MODEL") or DEFAULT).resolve()
    if model == DEFAULT.resolve():
        screenshot(browser, request.getfixturevalue("url"), tmp_path)
        return
    with serving("--model", str(model), "--log-level", "warning", "--num-api-servers", "1") as (_, url):
        screenshot(browser, url, tmp_path)


def screenshot(browser, url: str, tmp_path: Path) -> None:
    browser.set_window_size(1000, 1500)
    open_page(browser, url)
    spanish, russian = (
        "¡Me encanta esta canción! La escucho todos los días 😍",
        "Это был лучший день в моей жизни",
    )
    texts = [GOOD, spanish, russian, ARABIC, CHINESE]  # Latin, Cyrillic, Arabic, Han, and an emoji
    submit(browser, *texts)
    (first, *_) = results(browser, len(texts))
    tokens = first.find_elements(By.CSS_SELECTOR, ".sentence .token")
    tokens[3].click()  # focus "witty": its detail line shows
    target = Path(os.environ.get("TEXTCNN_PAGE_SCREENSHOT") or tmp_path / "page.png")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1000, min(height + 120, 2400))
    assert browser.save_screenshot(str(target))
    assert target.stat().st_size > 10_000


def test_chinese_read_by_a_model_gets_a_shade_per_character(browser, unicode_server):
    """With the unicode tokenizer a Chinese character is a token: each its own shaded element."""
    process, url = unicode_server
    assert process.poll() is None, "the next test stops this server: run this one before it"
    text = "😀 这部电影很好看, a warm film"
    open_page(browser, url)
    assert "Tokenizer\nunicode" in browser.find_element(By.ID, "card").text
    paste(browser, text)
    (result,) = results(browser, 1)
    explanation = httpx.post(f"{url}/explain", json={"text": text}).json()["explanations"][0]
    assert not explanation["unread"] and explanation["known"][0] is False  # the emoji: not in training
    sentence = result.find_element(By.CSS_SELECTOR, ".sentence")
    assert pieces(browser, sentence) == expected_pieces(explanation)
    # One element per character, nothing between them; the emoji before them shifts none.
    assert pieces(browser, sentence)[:9] == [("token", "😀"), ("text", " ")] + [
        ("token", c) for c in "这部电影很好看"
    ]
    tokens = result.find_elements(By.CSS_SELECTOR, ".sentence .token")
    assert "unknown" in tokens[0].get_attribute("class").split()
    lists, spans = result.find_element(By.CSS_SELECTOR, ".ngrams").text, explanation["spans"]
    for ngram in explanation["for"] + explanation["against"]:  # as typed: "电影", not the tokens "电 影"
        assert f"“{text[spans[ngram['start']][0] : spans[ngram['end'] - 1][1]]}”" in lists
    for token, part in zip(tokens, explanation["token_parts"], strict=True):
        assert "background-color" in token.get_attribute("style")
        assert float(token.get_attribute("data-part")) == pytest.approx(part)
    assert console_errors(browser) == []


def test_a_server_that_has_gone_is_a_message(browser, unicode_server):
    process, url = unicode_server  # stopped here: the test before, which needs it up, runs first
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


def test_a_multi_label_bundle_shows_a_chip_per_label_given(browser, tmp_path):
    """A chip per label given (/explain's `labels`), a bar per label with its threshold marked, and the
    text shaded by the selected chip's label: the first, until another is chosen. Its own server."""
    bundle = train_multilabel_bundle(tmp_path / "emotions")
    with serving("--model", str(bundle), "--log-level", "warning", "--num-api-servers", "1") as (
        process,
        url,
    ):
        open_page(browser, url)
        card = browser.find_element(
            By.XPATH, "//*[@id='card']//dt[normalize-space()='Task']/following-sibling::dd"
        )
        decision = httpx.get(f"{url}/info").json()["model"]["decision"]
        assert card.text == "multi-label" and "reaches its threshold (anger " in card.get_attribute("title")
        texts = [EMOTIONS[0], EMOTIONS[1]]  # joy; love and anger
        submit(browser, *texts)
        shown = results(browser, 2)
        explanations = httpx.post(f"{url}/explain", json={"texts": texts}).json()["explanations"]
        assert [len(e["labels"]) for e in explanations] == [1, 2]
        for result, explanation in zip(shown, explanations, strict=True):
            chips = result.find_elements(By.CSS_SELECTOR, "h2 .chip")
            names = [chip.find_element(By.CSS_SELECTOR, ".name").text for chip in chips]
            assert names == [given["label"] for given in explanation["labels"]]
            assert chips[0].get_attribute("aria-pressed") == "true"
            bars = result.find_elements(By.CSS_SELECTOR, ".bar")
            assert sorted(bar.get_attribute("aria-label").split()[0] for bar in bars) == [
                "anger",
                "joy",
                "love",
            ]
            for bar in bars:
                label = bar.get_attribute("aria-label").split()[0]
                mark = bar.find_element(By.CSS_SELECTOR, ".threshold")
                left = mark.location["x"] + mark.size["width"] / 2 - bar.location["x"]
                assert left == pytest.approx(decision["thresholds"][label] * bar.size["width"], abs=2)
            filled = {
                bar.get_attribute("aria-label").split()[0]
                for bar in result.find_elements(By.CSS_SELECTOR, ".bar:has(.fill.top)")
            }
            assert filled == set(names)
            tokens = result.find_elements(By.CSS_SELECTOR, ".sentence .token")
            parts = [float(token.get_attribute("data-part")) for token in tokens]
            assert parts == pytest.approx(explanation["labels"][0]["token_parts"])
        # Choosing the second label's chip shades the text by its split.
        second = shown[1].find_elements(By.CSS_SELECTOR, "h2 .chip")[1]
        second.click()
        assert second.get_attribute("aria-pressed") == "true"
        tokens = shown[1].find_elements(By.CSS_SELECTOR, ".sentence .token")
        parts = [float(token.get_attribute("data-part")) for token in tokens]
        assert parts == pytest.approx(explanations[1]["labels"][1]["token_parts"])
        assert (
            f"For {explanations[1]['labels'][1]['label']}"
            in shown[1].find_element(By.CSS_SELECTOR, ".ngrams").text
        )
        assert console_errors(browser) == []
        stop(process)
