"""The book builds cleanly (-W) and its pages render in headless Chromium.

Builds the book into a temporary folder (notebooks are stored executed, so this does not run
them), then opens the landing page and a chapter page in headless Chromium, takes screenshots and
checks that each page rendered: the screenshot is not blank, the title text is in the DOM after
scripts ran, and math was typeset by MathJax (no raw ``$$``/``\\(`` left in the text).
Chromium is Debian's package (``apt-get install chromium``); without it the browser checks skip.

``test_page_fits_and_works_offline`` opens every page of ``_toc.yml`` at 1280 px with networking
off and measures, inside the page, what a reader would see: code cells, outputs, tables and
display equations wider than their box (``scrollWidth > clientWidth``), images shown at less than
60 % of their natural width, requests to anything but ``file://`` and JavaScript errors or
``console.error`` calls. Screenshots stay in pytest's temporary folder.
"""
from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1280,1600", "--virtual-time-budget=15000",
                  "--disable-dev-shm-usage"]  # containers give /dev/shm 64 MB: renderers crash
# A headless Chromium launch occasionally exits without rendering (seen once in CI, on a page
# that renders every other time); a page is failed only if it fails this many launches.
LAUNCHES = 3


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(ROOT), "--path-output", str(out), "-W", "-n",
           "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, f"jupyter-book build -W failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    html = out / "_build" / "html"
    assert (html / "index.html").exists()
    return html


def chapter_pages(html: Path) -> list[Path]:
    return sorted(p for p in (html / "book").glob("[0-9][0-9]_*.html"))


def test_book_builds_with_every_toc_page(built_book):
    toc = (ROOT / "_toc.yml").read_text()
    for name in re.findall(r"file:\s*(\S+)", toc):
        assert (built_book / f"{name}.html").exists(), f"{name} listed in _toc.yml but not built"
    # plotly.js and MathJax are served from the book itself, so the HTML works offline
    assert (built_book / "_static" / "plotly.min.js").exists()
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").exists()


def test_plotly_js_only_on_pages_that_draw_plotly(built_book):
    """plotly.min.js (4.8 MB) is loaded, deferred, by the pages with a plotly figure and by no
    other page; the figures' inline scripts wait for the page to be parsed."""
    pages = sorted(built_book.rglob("*.html"))
    tag = re.compile(r'<script[^>]*src="[^"]*plotly\.min\.js[^"]*"[^>]*>')
    users = 0
    for page in pages:
        html = page.read_text()
        scripts = tag.findall(html)
        if 'class="cl-plotly"' in html:
            users += 1
            assert len(scripts) == 1 and "defer" in scripts[0], f"{page.name}: {scripts}"
            assert "DOMContentLoaded" in html, f"{page.name}: figure script does not wait"
        else:
            assert not scripts, f"{page.name} loads plotly.js but draws no plotly figure"
    assert users >= 1, "no page draws a plotly figure"


def _render(page: Path, tmp_path: Path) -> tuple[str, "object"]:
    from PIL import Image

    shot = tmp_path / (page.stem + ".png")
    base = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    for _ in range(LAUNCHES):
        subprocess.run([*base, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                       timeout=180)
        if shot.exists():
            break
    for _ in range(LAUNCHES):
        dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True,
                             text=True, timeout=180).stdout
        if "</body>" in dom:
            break
    assert shot.exists(), f"Chromium wrote no screenshot of {page.name}"
    return dom, Image.open(shot).convert("L")


def _visible_text(dom: str) -> str:
    dom = re.sub(r"(?s)<(script|style|mjx-assistive-mml)[^>]*>.*?</\1>", " ", dom)
    return re.sub(r"<[^>]+>", " ", dom)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium); render check skipped")
def test_pages_render_in_chromium(built_book, tmp_path):
    chapters = chapter_pages(built_book)
    # the landing page, the first chapter, and the first chapter with an interactive plotly figure
    with_plotly = [p for p in chapters if 'class="cl-plotly"' in p.read_text()]
    pages = [built_book / "index.html", *chapters[:1], *with_plotly[:1]]
    intro = built_book / "book" / "intro.html"
    if intro.exists():
        pages.append(intro)
    for page in pages:
        dom, img = _render(page.resolve(), tmp_path)
        # non-blank: a rendered page has text and figures, i.e. many distinct grey levels
        extrema = img.getextrema()
        assert extrema[1] - extrema[0] > 100, f"{page.name}: screenshot looks blank"
        assert len(set(img.resize((128, 160)).getdata())) > 20, f"{page.name}: screenshot looks blank"
        assert "Contrastive Learning" in dom, f"{page.name}: book title missing from rendered DOM"
        if 'class="cl-plotly"' in page.read_text():
            assert "main-svg" in dom, f"{page.name}: plotly figure not drawn (plotly.js missing offline?)"
        text = _visible_text(dom)
        if "mjx-container" in dom or "$$" in text or "\\(" in text:
            assert "mjx-container" in dom, f"{page.name}: math present but MathJax did not typeset it"
            assert "$$" not in text and "\\begin{" not in text, f"{page.name}: raw LaTeX leaked into the page"


# --------------------------------------------------------------------------------------
# What a reader sees on every page, measured inside headless Chromium

# Pages whose authors' last changes had not landed when these checks were added: their
# overflow, image and console checks are not yet expected to pass. The lead removes a page
# from this set once it passes; the checks themselves are the same for every page.
# Empty now: chapter 1, the last page listed (11 printed outputs wider than the column,
# tables up to 1535 px of 688), was narrowed to the page width.
PENDING_PAGES: set[str] = set()
TOC_PAGES = ["book/intro"] + [
    name
    for name in re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text())
    if name != "book/intro"
]
MIN_IMAGE_SCALE = 0.6  # an image shown below 60 % of its natural width has unreadable text
# Installed first thing in <head>: records failed loads, uncaught errors and console.error.
PROBE_HEAD = """<script>
window.__clErrors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) {
    window.__clErrors.push("failed to load " + (t.src || t.href));
  } else {
    window.__clErrors.push(e.message + " at " + (e.filename || "inline") + ":" + e.lineno);
  }
}, true);
(function () {
  var original = console.error;
  console.error = function () {
    window.__clErrors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
</script>"""
# Runs 3 s after load (MathJax and plotly have drawn) and writes its findings as JSON.
PROBE_BODY = """<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var out = {overflow: [], small_images: [], external: [], errors: window.__clErrors};
    var boxes = "div.cell_input pre, div.cell_output pre, div.output pre, " +
                "mjx-container[display=true], div.math, table";
    document.querySelectorAll(boxes).forEach(function (el) {
      if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) {
        out.overflow.push(el.tagName.toLowerCase() + " " + el.scrollWidth + " > " +
          el.clientWidth + " px: " + (el.textContent || "").trim().slice(0, 60));
      }
    });
    document.querySelectorAll("img").forEach(function (im) {
      if (im.naturalWidth > 0 && im.clientWidth > 0 &&
          im.clientWidth / im.naturalWidth < MIN_SCALE) {
        out.small_images.push((im.getAttribute("src") || "").slice(0, 60) + " shown at " +
          im.clientWidth + " of " + im.naturalWidth + " px");
      }
    });
    performance.getEntriesByType("resource").forEach(function (r) {
      if (!r.name.startsWith("file:") && !r.name.startsWith("data:")) {
        out.external.push(r.name);
      }
    });
    var pre = document.createElement("pre");
    pre.id = "cl-probe";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }, 3000);
});
</script>""".replace("MIN_SCALE", str(MIN_IMAGE_SCALE))


def _probe(page: Path, tmp_path: Path) -> dict:
    """Load a copy of ``page`` with the probes, networking off; return their findings."""
    text = page.read_text()
    text = text.replace("<head>", "<head>" + PROBE_HEAD, 1)
    text = text.replace("</body>", PROBE_BODY + "</body>", 1)
    copy = page.with_name(page.stem + ".cl-probe.html")  # same folder: relative links work
    copy.write_text(text)
    cmd = [CHROMIUM, *CHROMIUM_FLAGS,
           "--host-resolver-rules=MAP * ~NOTFOUND",  # no DNS: nothing leaves the machine
           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", copy.as_uri()]
    try:
        for _ in range(LAUNCHES):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
            found = re.search(r'<pre id="cl-probe">(.*?)</pre>', proc.stdout, re.S)
            if found:
                break
    finally:
        copy.unlink()
    assert found, (f"{page.name}: the page did not finish loading in Chromium in {LAUNCHES} "
                   f"launches; Chromium's last messages:\n{proc.stderr[-2000:]}")
    return json.loads(html_lib.unescape(found.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium); render check skipped")
@pytest.mark.parametrize("name", TOC_PAGES)
def test_page_fits_and_works_offline(built_book, tmp_path, name):
    if name in PENDING_PAGES:
        pytest.skip(f"{name} is in PENDING_PAGES (its authors' changes had not landed)")
    found = _probe((built_book / f"{name}.html").resolve(), tmp_path)
    assert not found["overflow"], f"{name}: wider than the column at 1280 px: {found['overflow']}"
    assert not found["small_images"], f"{name}: images shrunk below 60 %: {found['small_images']}"
    assert not found["external"], f"{name}: requests off the machine: {found['external']}"
    assert not found["errors"], f"{name}: errors in the page's scripts: {found['errors']}"
