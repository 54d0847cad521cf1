"""Headless Chromium driven by Playwright, for UI screenshots and real-browser tests.

Playwright's own browser builds come from ``playwright install``, a download this closed
network (and a cluster without internet) refuses, so Playwright drives Debian's ``chromium``
package (``apt-get install -y chromium``) through ``executable_path``. Each page gets a fresh
profile in a temporary directory; Playwright stops the browser and its driver process when
the context exits.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Headless (Playwright's ``headless=True`` adds ``--headless``) and nothing that reaches out:
# no QUIC, background, component-update or sync traffic, no first-run setup. ``--no-sandbox``
# because the tests run as root, where Chromium's sandbox refuses to start.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip


def chromium_missing() -> str | None:
    """Why no browser can be started here, or None when Debian's Chromium is installed."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} not found: apt-get install -y chromium (scripts/bootstrap.sh does)"
    return None


@contextmanager
def chromium_page(size: tuple[int, int] = (1600, 1200), timeout_s: float = 60.0) -> Iterator[Page]:
    """One page of a headless Chromium with a fresh profile; closed (browser included) after.

    ``timeout_s`` is Playwright's default for each wait, click and navigation."""
    missing = chromium_missing()
    if missing is not None:
        raise RuntimeError(missing)
    with tempfile.TemporaryDirectory(prefix="dino-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": size[0], "height": size[1]},
        )
        try:
            context.set_default_timeout(timeout_s * 1000)
            page = context.pages[0] if context.pages else context.new_page()
            yield page
        finally:
            context.close()
