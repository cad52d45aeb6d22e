"""Driving the web app from a real browser (Playwright + Debian chromium): shared by the browser tests and
``scripts/web-screenshots``. Playwright's own browser download is not needed: we launch the system chromium."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

#: Flags that let chromium run headless as root in a container, offline, without background traffic.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """``$GANINV_CHROMIUM``, else ``chromium`` / ``chromium-browser`` on the PATH, else None."""
    return os.environ.get("GANINV_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def upload(page: Any, prefix: str, path: str | Path) -> None:
    """Upload ``path`` through the file widget ``#<prefix>-upload``."""
    page.set_input_files(f"#{prefix}-upload input[type=file]", str(path))


def pick(page: Any, elem_id: str, option: str) -> None:
    """Choose ``option`` in the dropdown ``#<elem_id>``."""
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()


def set_number(page: Any, elem_id: str, value: float) -> None:
    """Type ``value`` into the number box of slider/number ``#<elem_id>``."""
    page.fill(f"#{elem_id} input[type=number]", str(value))
    page.keyboard.press("Enter")


def wait_image_change(page: Any, selector: str, before: str | None, timeout: float = 30_000) -> str:
    """Wait until the ``src`` of image ``selector`` differs from ``before``; returns the new ``src``."""
    page.wait_for_function("([s, b]) => { const i = document.querySelector(s); return i && i.src !== b; }",
                           arg=[selector, before], timeout=timeout)
    return str(page.locator(selector).get_attribute("src"))


def toast_text(page: Any, timeout: float = 20_000) -> str:
    """The text of the first notification (gradio's error toast)."""
    toast = page.locator('[data-testid="toast-text"]').first
    toast.wait_for(state="visible", timeout=timeout)
    return str(toast.inner_text())


__all__ = ["CHROMIUM_FLAGS", "chromium_path", "free_port", "pick", "set_number", "toast_text", "upload",
           "wait_image_change"]
