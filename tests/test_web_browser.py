"""The web app in a real browser: Debian's chromium driven by Playwright against ``ganinv serve``'s app.

The server runs the bundled ``mnist-stylegan2`` on a free loopback port. These tests skip when chromium or
Playwright is missing, unless ``GANINV_BROWSER_TESTS=required`` (set by ``scripts/test``, which installs
chromium first): then a missing browser fails the run instead of hiding the tests.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ganinv.web.browser import (
    CHROMIUM_FLAGS,
    chromium_path,
    free_port,
    pick,
    set_number,
    toast_text,
    upload,
    wait_image_change,
)

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
UPLOAD_LIMIT_MB = 0.5


def need_browser() -> str:
    required = os.environ.get("GANINV_BROWSER_TESTS") == "required"
    path = chromium_path()
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is not installed"
    if path is None:
        missing = "Debian chromium is not installed (apt-get install -y --no-install-recommends chromium)"
    if missing:
        if required:
            pytest.fail(f"browser tests are required but {missing}")
        pytest.skip(missing)
    return str(path)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    need_browser()
    work = tmp_path_factory.mktemp("web")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ganinv.generators.checkpoints import load_generator
    from ganinv.web.app import launch
    from ganinv.web.backend import Limits, Workbench

    G, _ = load_generator("mnist-stylegan2")
    wb = Workbench(G, "mnist-stylegan2", work, Limits(max_upload_mb=UPLOAD_LIMIT_MB, max_steps=400))
    port = free_port()
    demo = launch(wb, host="127.0.0.1", port=port, concurrency=1, block=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=need_browser(), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(server, wait_until="domcontentloaded")
    page.wait_for_selector("#invert-run")
    yield page
    page.close()


def test_upload_and_invert_shows_reconstruction_metrics_and_latent(page):
    from playwright.sync_api import expect

    upload(page, "invert", EXAMPLES / "digit_3.png")
    page.wait_for_selector("#invert-target img")
    set_number(page, "invert-steps", 30)
    page.click("#invert-run")
    page.wait_for_selector("#invert-recon img", timeout=120_000)
    expect(page.locator("#invert-metrics")).to_contain_text("PSNR (dB)")
    expect(page.locator("#invert-metrics")).to_contain_text("w+")
    page.wait_for_selector("#invert-error img")
    page.wait_for_selector("#invert-curve img")
    expect(page.locator("#invert-download a").first).to_have_attribute("href", re.compile(r"/latent\.npz$"))
    psnr = float(page.locator("#invert-metrics tr", has_text="PSNR").locator("td").nth(1).inner_text())
    assert psnr > 20  # a real reconstruction of the digit, not a blank image


def test_moving_an_edit_slider_changes_the_image(page):
    page.get_by_role("tab", name="Edit").click()
    pick(page, "edit-example", "digit 7")
    page.wait_for_selector("#edit-target img")
    page.click("#edit-invert")  # the bundled encoder: one pass
    page.wait_for_selector("#edit-output img", timeout=60_000)
    before = page.locator("#edit-output img").get_attribute("src")
    page.fill("#edit-strength input[type=range]", "4")
    after = wait_image_change(page, "#edit-output img", before)
    page.fill("#edit-strength input[type=range]", "-4")
    wait_image_change(page, "#edit-output img", after)


def test_restore_shows_ranked_hypotheses(page):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Restore").click()
    pick(page, "restore-example", "digit 5")
    page.wait_for_selector("#restore-target img")
    set_number(page, "restore-steps", 20)
    set_number(page, "restore-k", 2)
    page.click("#restore-run")
    expect(page.locator("#restore-metrics")).to_contain_text("best PSNR", timeout=120_000)
    expect(page.locator("#restore-gallery img")).to_have_count(2)
    page.wait_for_selector("#restore-observation img")
    expect(page.locator("#restore-metrics")).to_contain_text("baseline: TV inpainting")


def test_non_image_upload_gets_a_clear_message(page, tmp_path):
    fake = tmp_path / "holiday.png"
    fake.write_bytes(b"%PDF-1.7 this is a document, not a picture")
    upload(page, "invert", fake)
    text = toast_text(page)
    assert "holiday.png is not an image file" in text
    assert str(tmp_path) not in text  # no server path leaks into the page


def test_oversized_upload_is_refused_in_the_page(page, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x00" * int(UPLOAD_LIMIT_MB * 2 * 2**20))
    upload(page, "invert", big)
    assert "exceed the maximum allowed size" in toast_text(page)


def test_server_survives_a_client_leaving_mid_job(browser, server):
    from playwright.sync_api import expect

    leaving = browser.new_page()
    leaving.goto(server, wait_until="domcontentloaded")
    leaving.wait_for_selector("#invert-run")
    upload(leaving, "invert", EXAMPLES / "digit_1.png")
    leaving.wait_for_selector("#invert-target img")
    set_number(leaving, "invert-steps", 200)
    leaving.click("#invert-run")
    leaving.wait_for_selector("#invert-recon .progress-text, #invert-recon .eta-bar, .progress-bar", timeout=30_000)
    leaving.close()  # the browser goes away while the job runs
    fresh = browser.new_page()
    fresh.goto(server, wait_until="domcontentloaded")
    fresh.wait_for_selector("#invert-run")
    upload(fresh, "invert", EXAMPLES / "digit_2.png")
    fresh.wait_for_selector("#invert-target img")
    set_number(fresh, "invert-steps", 20)
    fresh.click("#invert-run")
    expect(fresh.locator("#invert-metrics")).to_contain_text("PSNR (dB)", timeout=180_000)
    fresh.close()


def test_photo_tab_frames_inverts_edits_and_pastes_back_into_the_full_photo(page, tmp_path):
    from PIL import Image
    from playwright.sync_api import expect

    photo = Image.new("RGB", (120, 90), (40, 40, 40))  # a "photo": a digit in the middle of a larger frame
    photo.paste(Image.open(EXAMPLES / "digit_4.png").convert("RGB").resize((64, 64)), (28, 13))
    photo.save(tmp_path / "photo.png")
    page.get_by_role("tab", name="Photo").click()
    upload(page, "photo", tmp_path / "photo.png")
    expect(page.locator("#photo-notes")).to_contain_text("120×90 px", timeout=30_000)
    page.click("#photo-find")
    expect(page.locator("#photo-faces img")).to_have_count(1, timeout=30_000)
    page.click("#photo-invert")
    page.wait_for_selector("#photo-output img", timeout=60_000)
    expect(page.locator("#photo-status")).to_contain_text("inverted with")
    size = page.evaluate("() => { const i = document.querySelector('#photo-output img'); "
                         "return [i.naturalWidth, i.naturalHeight]; }")
    assert size == [120, 90]  # pasted back into the photo at its own size, not the model's 32 px
    before = page.locator("#photo-output img").get_attribute("src")
    page.fill("#photo-strength input[type=range]", "4")
    after = wait_image_change(page, "#photo-output img", before)
    set_number(page, "photo-last", 1)  # the same edit on the coarse rows only
    wait_image_change(page, "#photo-output img", after)
    page.click("#photo-save")
    expect(page.locator("#photo-download a").first).to_have_attribute("href", re.compile(r"\.png$"))


def test_models_tab_lists_the_loaded_model(page):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Models").click()
    expect(page.locator("#models-card")).to_contain_text("Latent spaces")
    expect(page.locator("#models-card")).to_contain_text("mnist-stylegan2")
    expect(page.locator("#models-bundled")).to_contain_text("mnist-dcgan")
