"""Open a report.html from file:// in headless Chromium and say what the browser saw."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TUNESMITH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
REQUIRED = os.environ.get("TUNESMITH_REQUIRE_BROWSER") == "1"  # set by `make test`: never skip there

_BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not REQUIRED and not Path(CHROMIUM).is_file() and shutil.which("chromium") is None,
        reason=f"chromium not installed ({CHROMIUM}): apt-get install -y chromium",
    ),
    pytest.mark.skipif(
        not REQUIRED and importlib.util.find_spec("playwright") is None, reason="playwright not installed"
    ),
]


def needs_browser(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test as a browser test that skips without Chromium, except under `make test`."""
    for mark in _BROWSER_MARKS:
        test = mark(test)
    return test


PLOT_STATE = """id => { const d = document.getElementById('plot-' + id);
   const box = d.getBoundingClientRect();
   return {svg: d.querySelectorAll('.main-svg').length, traces: (d._fullData || []).length,
           points: (d._fullData || []).reduce((n, t) => n + ((t.z || t.y || []).length), 0),
           marks: d.querySelectorAll('.scatterlayer .trace, .heatmaplayer .hm, g.hm').length,
           rows: ((d._fullData || [])[0] || {}).type === 'heatmap' ? Array.from(d._fullData[0].y) : null,
           w: box.width, h: box.height}; }"""


def inspect_report(
    report: Path, screenshot: Path | None = None, checks: dict[str, str] | None = None
) -> dict[str, Any]:
    """Load the page with every non-local request blocked; return sections, nav links, plot states,
    console errors, every requested URL and the value of each JavaScript expression in `checks`."""
    from playwright.sync_api import sync_playwright

    console: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
        browser = p.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: console.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL_SCHEMES)
                       else route.abort())  # fmt: skip
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('div[data-plot] .main-svg').length > 0")
            page.wait_for_timeout(300)
            sections = page.eval_on_selector_all("main > section", "els => els.map(e => e.id)")
            nav = page.eval_on_selector_all("nav a", "els => els.map(e => e.getAttribute('href'))")
            plot_ids = page.eval_on_selector_all("div[data-plot]", "els => els.map(e => e.dataset.plot)")
            plots = {plot_id: page.evaluate(PLOT_STATE, plot_id) for plot_id in plot_ids}
            texts = {s: page.locator(f"section#{s}").inner_text() for s in sections}
            findings = page.eval_on_selector_all("article.finding", "els => els.map(e => e.dataset.finding)")
            checked = {name: page.evaluate(expression) for name, expression in (checks or {}).items()}
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"sections": sections, "nav": nav, "plots": plots, "texts": texts, "findings": findings,
            "console": console, "requests": requests, "checks": checked}  # fmt: skip
