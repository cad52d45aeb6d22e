"""Screenshots of every tab of the web app, as a new user sees them after one action each.

Run ``scripts/web-screenshots`` (sets up the environment first). Starts ``mnist-stylegan2`` on a free
loopback port, drives chromium through Playwright and writes ``docs/img/web-{invert,restore,edit,models}.png``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "img"


def main() -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from playwright.sync_api import expect, sync_playwright
    from rich.console import Console

    from ganinv.generators.checkpoints import load_generator
    from ganinv.web.app import launch
    from ganinv.web.backend import Workbench
    from ganinv.web.browser import CHROMIUM_FLAGS, chromium_path, free_port, pick, set_number, wait_image_change

    console = Console()
    chromium = chromium_path()
    if chromium is None:
        console.print("[red]error:[/] Debian chromium is not installed (apt-get install -y chromium)")
        return 1
    G, _ = load_generator("mnist-stylegan2")
    wb = Workbench(G, "mnist-stylegan2", tempfile.mkdtemp(prefix="ganinv-shots-"))
    warm = wb.warm_up(("towards",))
    port = free_port()
    demo = launch(wb, port=port, block=False, quiet=True)
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(240_000)
            expect.set_options(timeout=240_000)
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            page.wait_for_selector("#invert-run")
            with console.status("Invert tab: example digit 3, W+, 300 steps"):
                pick(page, "invert-example", "digit 3")
                page.wait_for_selector("#invert-target img")
                set_number(page, "invert-steps", 300)
                page.click("#invert-run")
                expect(page.locator("#invert-metrics")).to_contain_text("PSNR (dB)")
                page.wait_for_selector("#invert-curve img")
                page.screenshot(path=OUT / "web-invert.png", full_page=True)
            with console.status("Restore tab: digit 5, centred hole, 3 hypotheses"):
                page.get_by_role("tab", name="Restore").click()
                pick(page, "restore-example", "digit 5")
                page.wait_for_selector("#restore-target img")
                page.click("#restore-run")
                expect(page.locator("#restore-metrics")).to_contain_text("best PSNR")
                page.screenshot(path=OUT / "web-restore.png", full_page=True)
            with console.status("Edit tab: digit 4 through the encoder, towards digit 9"):
                warm.join()
                page.get_by_role("tab", name="Edit").click()
                pick(page, "edit-example", "digit 4")
                page.wait_for_selector("#edit-target img")
                page.click("#edit-invert")
                page.wait_for_selector("#edit-output img")
                before = page.locator("#edit-output img").get_attribute("src")
                page.get_by_text("InterFaceGAN: towards digit").click()
                set_number(page, "edit-component", 9)
                page.fill("#edit-strength input[type=range]", "3")
                wait_image_change(page, "#edit-output img", before)
                time.sleep(1.0)
                page.screenshot(path=OUT / "web-edit.png", full_page=True)
            page.get_by_role("tab", name="Models").click()
            expect(page.locator("#models-card")).to_contain_text("Latent spaces")
            page.screenshot(path=OUT / "web-models.png", full_page=True)
            browser.close()
    finally:
        demo.close()
    for name in ("invert", "restore", "edit", "models"):
        console.print(f"wrote {OUT / f'web-{name}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
