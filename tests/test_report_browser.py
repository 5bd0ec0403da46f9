"""The report pages in a real browser: headless Chromium opens them from file://, with the network blocked.

Checks the DOM after the scripts ran (plotly drew its charts), that a screenshot is not blank, and that the page
logged nothing to the console (no error, no uncaught exception: the pages log nothing at all). Chromium comes from
Debian's `chromium` package; `.ci/run` installs it when missing. Without it this test fails, it does not skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_fixtures import MODEL, Project, build_project

from mlops_layer import api


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    assert exe, "headless Chromium is needed: apt-get install -y chromium (.ci/run installs it)"
    return exe


def browse(page: Path, tmp: Path, *extra: str) -> tuple[str, list[str]]:
    """Run headless Chromium on ``page`` with ``extra`` flags; (stdout, console lines) — network requests fail."""
    profile = tmp / f"profile-{len(list(tmp.iterdir()))}"
    proc = subprocess.run(
        [
            chromium(),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            "--proxy-server=127.0.0.1:9",  # any request would fail loudly (and log to the console)
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2200",
            *extra,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HOME": str(tmp)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return proc.stdout, console


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[api.ReportResult]:
    with pytest.MonkeyPatch.context() as mp:
        for var in list(os.environ):
            if var.startswith(("MLOPS_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY")):
                mp.delenv(var, raising=False)
        project: Project = build_project(tmp_path_factory.mktemp("browser"))
        yield api.report(out=tmp_path_factory.mktemp("site"), log_to_mlflow=False, settings=project.cfg)


def test_model_page_renders_its_charts_without_console_errors(pages: api.ReportResult, tmp_path: Path) -> None:
    dom, console = browse(pages.out_dir / f"{MODEL}.html", tmp_path, "--dump-dom")
    assert console == []
    assert re.search(r'<h1 id="model-name">churn</h1>', dom)
    assert 'id="serving">v1 @champion<' in dom
    for section in ("card", "timeline", "lineage", "decisions", "approvals", "monitoring", "alerts", "audit"):
        assert f'<section id="{section}">' in dom, section
    assert dom.count('class="main-svg"') >= 6  # plotly drew the 3 charts (2 svg layers each)
    assert "alert fired" in dom and "batch drift share" in dom and "@champion" in dom
    assert "&lt;script&gt;window.__pwned = 1;" in dom and "<script>window.__pwned" not in dom
    assert 'id="audit-status" class="ok">every entry covered by a signed checkpoint<' in dom


def test_inventory_page_in_the_browser(pages: api.ReportResult, tmp_path: Path) -> None:
    assert pages.index is not None
    dom, console = browse(pages.index, tmp_path, "--dump-dom")
    assert console == []
    assert '<a href="churn.html">churn</a>' in dom and '<a href="fraud.html">fraud</a>' in dom
    assert "Bob Owner" in dom and "accuracy_low" in dom


def test_screenshot_is_not_blank(pages: api.ReportResult, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "page.png"
    _, console = browse(pages.out_dir / f"{MODEL}.html", tmp_path, f"--screenshot={shot}")
    assert console == []
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        assert rgb.size == (1280, 2200)
    # text, tables and coloured chart traces: a blank or failed page has a handful of colours
    assert len(colours) > 200, len(colours)
    assert max(count for count, _ in colours) < 0.9 * 1280 * 2200


def test_the_console_check_catches_errors_and_a_page_that_needs_the_network(tmp_path: Path) -> None:
    """The same harness on pages that misbehave: console.error, an uncaught error, plotly.js from a CDN."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>console.error('oops'); null.boom()</script></body></html>")
    _, console = browse(bad, tmp_path, "--dump-dom")
    assert any("oops" in line for line in console) and any("Uncaught" in line for line in console), console
    remote = tmp_path / "remote.html"
    remote.write_text(
        '<html><body><div id="c"></div><script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script>'
        "<script>if (window.Plotly) { Plotly.newPlot('c', [{y: [1, 2]}]); }</script></body></html>"
    )
    dom, _ = browse(remote, tmp_path, "--dump-dom")
    assert 'class="main-svg"' not in dom  # the network is blocked: only inlined plotly.js can draw
