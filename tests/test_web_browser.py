"""The box's page in a real browser: Debian's chromium driven by Playwright, against a running simulated box.

Every Play control is proven by the box itself (its status file or its sound
output), a model switch by what the box then plays, a refused config by the
message on the page and the file left as it was. With IMPS_WEB_SCREENSHOTS=DIR
the phone-sized screenshots of each page are written there (docs/figures).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from imps.io.interaction_log import read_log
from conftest import DEVICE_PYTHON
from web_box import DEFAULT_MODEL, PASSWORD, WebBox, copy_model

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements/work.txt")
CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = os.environ.get("IMPS_WEB_SCREENSHOTS")


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    from osc_listener import SoundListener
    sound = SoundListener()
    box = WebBox(tmp_path_factory.mktemp("webui"), DEVICE_PYTHON, sound.port)
    box.sound = sound
    yield box
    box.stop()
    sound.close()


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "chromium is in requirements/apt.txt (make system-deps)"
    with playwright.sync_playwright() as p:
        args = ["--disable-background-networking", "--disable-component-update", "--no-first-run"]
        if os.geteuid() == 0:
            args.append("--no-sandbox")
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(web, browser):
    """One phone-sized tab logged in by the password, as a performer would."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                  accept_downloads=True)
    tab = context.new_page()
    tab.goto(f"{web.url}/")
    assert tab.url.endswith("/login")               # no session: the login page
    tab.fill("#password", "not-the-password")
    tab.click("button[type=submit]")
    tab.wait_for_selector("#message:has-text('wrong password')")
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{web.url}/")
    tab.wait_for_selector("#slider-time_scale")
    yield tab
    context.close()


def shot(tab, name: str, top: str | None = None) -> None:
    if top:
        tab.locator(top).scroll_into_view_if_needed()
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(SCREENSHOTS) / f"web-{name}.png"))


def test_every_play_control_reaches_the_box(web, page):
    status = web.status
    page.click("#modes button[data-mode=duet]")
    web.wait(lambda: status()["engine"]["mode"] == "duet", "duet in the box's status")
    page.click("#modes button[data-mode=layered]")
    web.wait(lambda: status()["engine"]["mode"] == "layered", "layered")
    page.click("#pause")
    web.wait(lambda: status()["engine"]["mode"] == "layered (paused)", "paused")
    page.click("#resume")
    web.wait(lambda: status()["engine"]["mode"] == "layered", "playing on")
    silences = len(web.sound.of("/silence"))
    page.click("#reset")
    web.sound.wait_for("/silence", silences + 1)     # a reset silences the sound engine
    for name, value in [("time_scale", "2"), ("threshold", "0.5"), ("pi_temperature", "1.5"),
                        ("sigma_temperature", "0.25")]:
        page.fill(f"#number-{name}", value)
        page.dispatch_event(f"#number-{name}", "change")
        web.wait(lambda: status()["settings"][name] == float(value), f"{name} {value} in the box's status")
    page.fill("#number-time_scale", "1000")           # beyond the range the OSC control has
    page.dispatch_event("#number-time_scale", "change")
    page.wait_for_selector("#play-message:has-text('out of range, expected 0.01 to 100')")
    assert status()["settings"]["time_scale"] == 2.0
    assert page.input_value("#number-time_scale") == "2"      # the page shows what the box plays
    page.click("#modes button[data-mode=call_response]")
    web.wait(lambda: status()["engine"]["mode"] == "call_response", "call_response")
    page.wait_for_selector("#figures dd")
    figures = page.inner_text("#figures")
    assert "mode" in figures and "disk left" in figures and page.inner_text("#statusline").startswith("mode ")


def attribute(page, name: str) -> float:
    return float(page.get_attribute("#picture", name) or 0)


def test_the_live_picture_moves(web, page):
    web.wait(lambda: attribute(page, "data-points") > 0, "points in the live picture")
    first, newest = attribute(page, "data-updates"), attribute(page, "data-newest")
    web.wait(lambda: attribute(page, "data-updates") >= first + 10, "ten more updates of the live picture")
    web.wait(lambda: attribute(page, "data-newest") > newest, "a newer gesture in the picture")
    shot(page, "play")


def test_a_good_model_is_uploaded_and_switched_and_a_bad_one_refused_while_it_plays_on(web, page, tmp_path):
    page.click(".tab[data-tab=models]")
    page.wait_for_selector("#model-list .item[data-model='default.tflite']")
    mine = copy_model(DEFAULT_MODEL, tmp_path, "mine.tflite")
    page.set_input_files("#upload input[name=model]", str(mine))
    page.set_input_files("#upload input[name=sidecar]", str(mine.with_suffix(".json")))
    page.click("#upload button[type=submit]")
    page.wait_for_selector("#models-message:has-text('mine.tflite: ')")
    assert "refused" not in page.inner_text("#models-message")
    page.click("#model-list .item[data-model='mine.tflite'] button.switch")
    web.wait(lambda: web.status()["model"].endswith("/mine.tflite"), "the box playing mine.tflite")
    page.wait_for_selector("#models-message:has-text('reloaded')")
    web.playing()

    broken = tmp_path / "broken.tflite"
    broken.write_bytes(DEFAULT_MODEL.read_bytes()[:5000])
    page.set_input_files("#upload input[name=model]", str(broken))
    page.set_input_files("#upload input[name=sidecar]", [])
    page.click("#upload button[type=submit]")
    page.wait_for_selector("#models-message:has-text('broken.tflite refused')")
    assert not (web.models / "broken.tflite").exists()

    page.click("#model-list .item[data-model='xtouch-9d.tflite'] button.switch")   # bundled, but 9-D: not this box's
    page.wait_for_selector("#models-message:has-text('refused, the box plays on')")
    shot(page, "models", top="#upload")
    assert web.status()["model"].endswith("/mine.tflite")
    web.playing()


def test_a_bad_config_is_refused_with_its_message_and_the_file_kept(web, page):
    before = web.config.read_text()
    page.click(".tab[data-tab=config]")
    web.wait(lambda: "[osc]" in page.input_value("#config-text"), "the config in the editor")
    page.fill("#config-text", before + "\n[engine]\ntime_scale = 1e12\n")
    page.click("#config-save")
    page.wait_for_selector("#config-message:has-text('[engine] time_scale = 1000000000000.0: out of range, expected 0.01 to 100')")
    shot(page, "config")
    assert web.config.read_text() == before
    web.playing()


def test_a_good_config_is_saved_the_previous_kept_and_applied_by_reload(web, page):
    before = web.config.read_text()
    page.click(".tab[data-tab=config]")
    web.wait(lambda: "[osc]" in page.input_value("#config-text"), "the config in the editor")
    page.fill("#config-text", before.replace("[osc]", "[engine]\nmode = \"duet\"\n\n[osc]"))
    page.click("#config-save")
    page.wait_for_selector("#config-message:has-text('reloaded')")
    web.wait(lambda: web.status()["engine"]["mode"] == "duet", "duet from the saved config")
    assert (web.config.parent / "box.toml.previous").read_text() == before


def test_a_preset_is_saved_and_recalled_in_one_tap(web, page):
    page.click(".tab[data-tab=config]")
    web.wait(lambda: "[osc]" in page.input_value("#config-text"), "the config in the editor")
    saved = web.config.read_text()
    page.fill("#preset-name", "gig")
    page.click("#preset-form button[type=submit]")
    page.wait_for_selector("#preset-list .item[data-preset=gig]")
    page.fill("#config-text", saved.replace("[osc]", "[engine]\nmode = \"user\"\n\n[osc]", 1)
              if "[engine]" not in saved else saved.replace("mode = \"duet\"", "mode = \"user\""))
    page.click("#config-save")
    web.wait(lambda: web.status()["engine"]["mode"] == "user", "user mode from the edited config")
    page.click("#preset-list .item[data-preset=gig] button.recall")
    page.wait_for_selector("#presets-message:has-text('gig: reloaded')")
    assert web.config.read_text() == saved
    web.wait(lambda: web.status()["engine"]["mode"] == "duet", "the preset's duet")
    shot(page, "presets", top="#preset-form")


def test_a_log_is_listed_downloaded_and_parsed(web, page, tmp_path):
    page.click(".tab[data-tab=logs]")
    page.wait_for_selector("#log-list .item")
    shot(page, "logs")
    with page.expect_download() as download:
        page.click("#log-list .item >> text=Download")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    records = read_log(saved)
    assert len(records.sources) > 10 and set(records.sources) <= {"interface", "rnn"}


def test_logout_ends_the_session_and_the_live_picture(web, page):
    page.click(".tab[data-tab=play]")
    with page.expect_response(f"{web.url}/logout") as answer:
        page.click("#logout")
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_url(f"{web.url}/login")
    answer = page.goto(f"{web.url}/")
    assert page.url.endswith("/login"), (answer.status, answer.url, answer.request.redirected_from)
    shot(page, "login")
