"""Sections that later features fill: a registered renderer replaces the placeholder; new sections join."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_run import write_fake_run

from tunesmith.diagnosis import RunData
from tunesmith.report import SECTION_IDS, extras, register_section, render_report, section_ids
from tunesmith.report.html import esc


@pytest.fixture()
def clean_registry() -> Iterator[None]:
    sections, renderers = dict(extras.EXTRA_SECTIONS), dict(extras.RENDERERS)
    yield
    extras.EXTRA_SECTIONS.clear()
    extras.EXTRA_SECTIONS.update(sections)
    extras.RENDERERS.clear()
    extras.RENDERERS.update(renderers)


def test_placeholders_until_a_feature_fills_them(tmp_path: Path, clean_registry: None) -> None:
    run_dir = write_fake_run(tmp_path / "run")
    html = render_report(run_dir).read_text()
    assert '<section id="tuning">' in html and "Not run: lr range test / hyper-parameter search" in html

    def trials(data: RunData) -> str:
        return f"<table class='trials'><tr><td>{esc(data.setting('output.name'))}</td></tr></table>"

    register_section("tuning", trials)
    register_section("compare", lambda data: None, title="Compare runs")
    assert section_ids()[-1] == "compare" and "compare" not in SECTION_IDS
    html = render_report(run_dir).read_text()
    assert "<table class='trials'>" in html
    assert '<section id="compare">' in html and "Not run: compare runs" in html
    assert '<a href="#compare">Compare runs</a>' in html


def test_bad_registrations_are_refused(clean_registry: None) -> None:
    with pytest.raises(ValueError, match="title="):
        register_section("trials", lambda data: None)
    with pytest.raises(ValueError, match="core section"):
        register_section("verdict", lambda data: None, title="Mine")
    with pytest.raises(ValueError, match="lowercase"):
        register_section("Bad Name", lambda data: None, title="Bad")
