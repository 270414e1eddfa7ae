"""`zoo report`: one self-contained HTML file, checked in a real headless Chromium (Debian's package)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import zoo

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage"]


@pytest.fixture
def measured(coral_dir, sample_dir, monkeypatch):
    """A real bench run and a real eval run (60 images) on coral's file."""
    monkeypatch.setenv("ZOO_MIRROR", str(coral_dir))
    bench = zoo.bench("coral/mobilenet_v2_1.0_224_quant", iters=5, seconds=0, warmup=1)
    evaluation = zoo.evaluate("coral/mobilenet_v2_1.0_224_quant", sample_dir, limit=60)
    return bench, evaluation


def test_report_renders_in_a_real_browser_offline_with_tables_and_plots(measured, tmp_path):
    from playwright.sync_api import sync_playwright

    bench, evaluation = measured
    out = zoo.report(tmp_path / "report.html", ["coral/*", "axis/*", "paddleclas/*"])
    assert out == {"path": str(tmp_path / "report.html"), "cards": 13, "runs": 2}
    text = (tmp_path / "report.html").read_text()
    assert bench["artifact"]["sha256"] in text and "https://" in text  # provenance: sha256 and source URL
    assert "Measured on the same file as coral/mobilenet_v2_1.0_224_quant, not on this card" in text
    assert "too few images to tell" in text and "Worst classes in this run" in text and ">nan<" not in text
    assert "<script" not in text and "src=\"http" not in text  # nothing to fetch, nothing to run
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        errors, requests = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((tmp_path / "report.html").as_uri())
        plots = page.evaluate("[...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect().width)")
        titles = page.evaluate("[...document.querySelectorAll('svg g[id^=zoo-point] > title')].map(t => t.textContent)")
        overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
        tables = page.locator("table").count()
        headings = page.locator("h3").all_inner_texts()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        fetched = list(requests)
        # every card's rank on one line, in the widest table too (all cards, ranks of two digits), also in a
        # narrower window, where the columns are squeezed
        zoo.report(tmp_path / "all.html")
        page.set_viewport_size({"width": 900, "height": 1600})
        page.goto((tmp_path / "all.html").as_uri())
        broken = page.evaluate("[...document.querySelectorAll('td:first-child')].filter(td => {"
                               "const r = document.createRange(); r.selectNodeContents(td);"
                               "return r.getClientRects().length > 1}).map(td => td.textContent)")
        browser.close()
    assert errors == [] and fetched == [(tmp_path / "report.html").as_uri()]
    assert len(plots) == 2 and min(plots) > 500  # both plots drawn from the inline SVG
    # coral claims no top-1: its measured point sits at the claim Axis publishes for the same bytes, named so
    assert "coral/mobilenet_v2_1.0_224_quant (claim of axis/mobilenet_v2_1.0_224_quant, same file)" in titles
    assert overflow <= 0  # nothing wider than the page at 1280 px
    assert broken == []
    assert tables >= 8 and "NVIDIA V100 · TensorRT · fp32 · batch 1" in headings
    assert (tmp_path / "report.png").stat().st_size > 50_000


@pytest.mark.parametrize("where, words", [("missing/r.html", "does not exist"), (".", "is a folder"),
                                          ("r.pdf", "expected a .html or .htm file name")])
def test_report_into_a_bad_place_is_one_line_and_writes_nothing(tmp_path, where, words):
    target = tmp_path if where == "." else tmp_path / where
    proc = subprocess.run([sys.executable, "-c", "import zoo_cli; zoo_cli.main()", "report", "-o", str(target)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []
