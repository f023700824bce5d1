"""Open report.html from file:// in headless Chromium: sections present, plots drawn, no errors, no network."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fake_run import write_fake_run

from report_browser import LOCAL_SCHEMES, inspect_report, needs_browser
from tunesmith.report import SECTION_IDS, render_report

EXPECTED_PLOTS = ["step-loss", "epoch-loss", "epoch-metrics", "lr", "grad-flow", "update-ratio", "grad-norm",
                  "confusion-validation", "confusion-test"]  # fmt: skip
# The evaluation suite's plots (evaluation/*.json): slices per condition and text length, reliability,
# flip rates, latency against macro-F1, top tokens, the baseline.
EVALUATION_PLOTS = ["slices-0", "slices-1", "reliability", "flip-rate", "latency", "top-tokens", "baseline"]


@needs_browser
def test_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    report = render_report(write_fake_run(tmp_path / "run", evaluation=True))
    seen = inspect_report(
        report,
        screenshot=tmp_path / "report.png",
        checks={
            # Hostile data strings arrive as text, never as markup.
            "no_markup": "window.__xss === undefined && document.querySelectorAll('main img').length === 0",
            "never_recognised": "document.body.innerText.toLowerCase().includes('never recognised')",
        },
    )

    for section_id in SECTION_IDS:
        assert seen["sections"].count(section_id) == 1, section_id
        assert seen["nav"].count(f"#{section_id}") == 1, section_id
    assert sorted(seen["plots"]) == sorted(EXPECTED_PLOTS + EVALUATION_PLOTS)
    for section_id in ("slices", "calibration", "robustness", "latency", "explanations", "baseline"):
        assert "Not run" not in seen["texts"][section_id] and "not run" not in seen["texts"][section_id], (
            section_id
        )
    assert "Holm p" in seen["texts"]["slices"] and "after temperature scaling" in seen["texts"]["calibration"]
    assert "transformers.pipeline" in seen["texts"]["latency"] and "faithful" in seen["texts"]["explanations"]
    for plot_id, drawn in seen["plots"].items():
        assert drawn["svg"] > 0 and drawn["traces"] > 0 and drawn["points"] > 0, (plot_id, drawn)
        assert drawn["marks"] > 0 and drawn["w"] > 100 and drawn["h"] > 100, (plot_id, drawn)
    assert seen["checks"] == {"no_markup": True, "never_recognised": True}
    shot = os.environ.get("TUNESMITH_SCREENSHOT")
    if shot:
        shutil.copy(tmp_path / "report.png", shot)

    assert seen["console"] == []
    assert seen["requests"] and all(url.startswith(LOCAL_SCHEMES) for url in seen["requests"]), seen[
        "requests"
    ]


def test_hostile_strings_are_escaped_in_the_html_without_a_browser(tmp_path: Path) -> None:
    """The same guarantee as the browser's no_markup check, on the bytes: runs wherever the tests run."""
    import html

    from fake_run import HOSTILE

    page = Path(render_report(write_fake_run(tmp_path / "run"))).read_text(encoding="utf-8")
    assert HOSTILE not in page
    for fragment in ("<script>window.__xss", "<img src=x onerror", "</textarea><img"):
        assert fragment not in page, fragment
    assert html.escape(HOSTILE) in page  # shown to the reader, as text
