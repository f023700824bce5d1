"""Open report.html from file:// in headless Chromium: sections present, plots drawn, no errors, no network."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from fake_run import write_fake_run

from tunesmith.report import SECTION_IDS, render_report

CHROMIUM = os.environ.get("TUNESMITH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")

_REQUIRED = os.environ.get("TUNESMITH_REQUIRE_BROWSER") == "1"  # set by `make test`: never skip there

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not _REQUIRED and not Path(CHROMIUM).is_file() and shutil.which("chromium") is None,
        reason=f"chromium not installed ({CHROMIUM}): apt-get install -y chromium",
    ),
    pytest.mark.skipif(
        not _REQUIRED and importlib.util.find_spec("playwright") is None, reason="playwright not installed"
    ),
]

EXPECTED_PLOTS = ["step-loss", "epoch-loss", "epoch-metrics", "lr", "grad-flow", "update-ratio", "grad-norm",
                  "confusion-validation", "confusion-test"]  # fmt: skip


def test_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    report = render_report(write_fake_run(tmp_path / "run"))
    console_errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium"),
                                    args=ARGS, headless=True)  # fmt: skip
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "console", lambda m: console_errors.append(m.text) if m.type in ("error", "warning") else None
        )
        page.on("pageerror", lambda e: console_errors.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        # Anything leaving the machine is blocked and recorded (it would fail offline anyway).
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL_SCHEMES)
                   else route.abort())  # fmt: skip
        page.goto(report.as_uri(), wait_until="load")
        page.wait_for_function("document.querySelectorAll('div[data-plot] .main-svg').length > 0")
        page.wait_for_timeout(500)

        for section_id in SECTION_IDS:
            assert page.locator(f"section#{section_id}").count() == 1, section_id
            assert page.locator(f"nav a[href='#{section_id}']").count() == 1, section_id

        plot_ids = page.eval_on_selector_all("div[data-plot]", "els => els.map(e => e.dataset.plot)")
        assert sorted(plot_ids) == sorted(EXPECTED_PLOTS)
        for plot_id in plot_ids:
            drawn = page.evaluate(
                """id => { const d = document.getElementById('plot-' + id);
                   const box = d.getBoundingClientRect();
                   return {svg: d.querySelectorAll('.main-svg').length, traces: (d._fullData || []).length,
                           points: (d._fullData || []).reduce((n, t) => n + ((t.z || t.y || []).length), 0),
                           marks: d.querySelectorAll('.scatterlayer .trace, .heatmaplayer .hm, g.hm').length,
                           w: box.width, h: box.height}; }""",
                plot_id,
            )
            assert drawn["svg"] > 0 and drawn["traces"] > 0 and drawn["points"] > 0, (plot_id, drawn)
            assert drawn["marks"] > 0 and drawn["w"] > 100 and drawn["h"] > 100, (plot_id, drawn)

        # Hostile data strings arrive as text, never as markup.
        assert page.evaluate(
            "window.__xss === undefined && document.querySelectorAll('main img').length === 0"
        )
        assert page.locator("table.errors").first.inner_text().count("<script>") >= 0
        assert page.locator("text=never recognised").count() >= 1
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        shot = os.environ.get("TUNESMITH_SCREENSHOT")
        if shot:
            shutil.copy(tmp_path / "report.png", shot)
        browser.close()

    assert console_errors == []
    assert requests and all(url.startswith(LOCAL_SCHEMES) for url in requests), requests
