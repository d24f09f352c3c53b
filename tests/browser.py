"""What the browser tests share: Debian's headless Chromium driven by Playwright, and a page that records errors.

The fixtures ``browser`` and ``screenshots`` are in tests/conftest.py; screenshots go to the test's temporary
folder, or to ``$DLFLOW_SCREENSHOTS`` (the docs' pictures come from there).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
from matplotlib import image as mpimg

CHROMIUM = os.environ.get("DLFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


class Page:
    """A browser page that records what went wrong while it was open."""

    def __init__(self, browser, width: int = 1400, height: int = 900, page=None) -> None:
        self.page = page or browser.new_page(viewport={"width": width, "height": height})
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.failed: list[str] = []
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("requestfailed", lambda request: self.failed.append(request.url))

    @classmethod
    def wrap(cls, page) -> Page:
        """A page the browser opened itself (a new tab)."""
        return cls(None, page=page)

    def open(self, url: str) -> None:
        """Go to ``url`` (it must answer 200) and wait until the network is idle."""
        response = self.page.goto(url)
        assert response is not None and response.status == 200, f"{url}: {response.status if response else 'no response'}"
        self.page.wait_for_load_state("networkidle")

    def assert_clean(self) -> None:
        assert not self.console_errors, self.console_errors
        assert not self.page_errors, self.page_errors
        assert not self.failed, f"failed requests: {self.failed}"

    def screenshot(self, path: Path, full_page: bool = False) -> np.ndarray:
        """Save a PNG at ``path``; its pixels, checked not to be a blank page."""
        png = self.page.screenshot(path=str(path), full_page=full_page)
        pixels = mpimg.imread(io.BytesIO(png), format="png")
        assert pixels.shape[0] >= 300 and pixels.shape[1] >= 800, pixels.shape
        assert pixels[..., :3].std() > 0.05, f"{path.name} looks blank"
        return pixels

    def headings(self, level: str) -> list[str]:
        return [text.replace("¶", "").strip() for text in self.page.locator(f"article {level}").all_inner_texts()]

    def links(self, selector: str) -> list[str]:
        return self.page.eval_on_selector_all(selector, "links => links.map(a => a.href)")
