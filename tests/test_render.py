"""The built book in a real browser: headless Chromium opens every page of the toc and the math
is typeset by the MathJax that the book serves itself (``_static/mathjax``, fetched by
``make install``), no raw TeX is left in the text, every image exists and the page is not blank.

pytest runs this file after tests/test_book.py (files run in alphabetical order), whose build
test writes ``_build/html``; when that test is in the same session, the pages checked here must
come from that build. Chromium is Debian's ``chromium`` package (.ci/run installs it); without
it these tests skip and say so.
"""

import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from PIL import Image
from test_book import source, toc_files

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
BUILD_TEST = "tests/test_book.py::test_book_builds_and_has_every_page"
COLLECTED_AT = time.time()  # collection ends before any test runs, the build test included
LOCAL_MATHJAX = "_static/mathjax/tex-chtml.js"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--virtual-time-budget=15000",
                  "--window-size=1200,2000"]
# Text that MathJax should have typeset: $$, \( \[ delimiters, or a TeX command (\frac, \E, ...).
RAW_TEX = re.compile(r"\$\$|\\[(\[]|\\[A-Za-z]+")
NOT_TEXT = {"script", "style", "pre", "code", "textarea", "noscript", "template"}


def chromium() -> str | None:
    return shutil.which("chromium") or next(
        (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.access(p, os.X_OK)),
        None)


def has_math(page_source: Path) -> bool:
    """Whether a page's source has math outside its code: ``$...$``, ``$$``, ``{math}``."""
    text = page_source.read_text()
    if page_source.suffix == ".ipynb":
        import json
        text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"]
                         if c["cell_type"] == "markdown")
    text = re.sub(r"(`{3,}|~{3,})\{code-cell\}.*?\n\1", "", text, flags=re.S)  # code cells
    text = re.sub(r"(`{3,}|~{3,})[^\n{]*\n.*?\n\1", "", text, flags=re.S)  # code blocks
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    return bool(re.search(r"\$\$|\$[^$\s][^$\n]*\$|\{math\}|\\begin\{", text))


class _Dom(HTMLParser):
    """What the checks need from a page's DOM: its text outside code, scripts, images, and for
    every ``math`` element whether MathJax put an ``mjx-container`` in it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.scripts: list[str] = []
        self.images: list[str] = []
        self.math = 0  # elements of class "math" (Sphinx's span/div around each formula)
        self.typeset = 0  # ... that hold an mjx-container
        self.containers = 0
        self.errors = 0  # mjx-merror: TeX that MathJax could not parse
        self._skip = 0
        self._open: list[list] = []  # [tag, depth, typeset] of each open math element

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in NOT_TEXT:
            self._skip += 1
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        elif tag == "img":
            self.images.append(a.get("src") or "")
        elif tag == "mjx-container":
            self.containers += 1
            for m in self._open:
                m[2] = True
        elif tag == "mjx-merror":
            self.errors += 1
        for m in self._open:
            m[1] += m[0] == tag
        if "math" in (a.get("class") or "").split() and tag in ("span", "div"):
            self.math += 1
            self._open.append([tag, 1, False])

    def handle_endtag(self, tag):
        if tag in NOT_TEXT:
            self._skip = max(0, self._skip - 1)
        for m in list(self._open):
            m[1] -= m[0] == tag
            if m[1] == 0:
                self.typeset += m[2]
                self._open.remove(m)

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def page_problems(page: Path, dom: str, screenshot: Path, expects_math: bool) -> list[str]:
    """Everything wrong with one rendered page (``dom``: Chromium's DOM after the scripts ran),
    as readable lines; an empty list is a page that renders."""
    d = _Dom()
    d.feed(dom)
    problems = []
    url = page.resolve().as_uri()
    local = [s for s in d.scripts if urlsplit(urljoin(url, s)).path.endswith(LOCAL_MATHJAX)]
    if (expects_math or d.math) and not local:  # Sphinx loads MathJax only where there is math
        problems.append(f"no <script> loads the book's own {LOCAL_MATHJAX}")
    for s in local:
        if not Path(unquote(urlsplit(urljoin(url, s)).path)).is_file():
            problems.append(f"MathJax script {s} is missing: run `make install`")
    problems += [f"MathJax loaded from outside the book: {s}" for s in d.scripts
                 if "mathjax" in s.lower() and urlsplit(urljoin(url, s)).scheme != "file"]
    if expects_math and d.containers == 0:
        problems.append("the source has math but no formula was typeset (no mjx-container)")
    if d.typeset < d.math:
        problems.append(f"{d.math - d.typeset} of {d.math} math elements were not typeset")
    if d.errors:
        problems.append(f"{d.errors} formulas with TeX errors (mjx-merror)")
    text = " ".join(" ".join(d.text).split())
    for m in list(RAW_TEX.finditer(text))[:5]:
        problems.append(f"raw TeX in the text: …{text[max(0, m.start() - 40):m.end() + 40]}…")
    for src in d.images:
        target = urlsplit(urljoin(url, src))
        if target.scheme == "data":
            continue
        if target.scheme != "file":
            problems.append(f"<img> from outside the book: {src}")
        elif not Path(unquote(target.path)).is_file():
            problems.append(f"<img> points to a missing file: {src}")
    try:
        with Image.open(screenshot) as im:
            rgb = im.convert("RGB")
            if rgb.getcolors(1) is not None:  # None: more than one colour
                problems.append(f"the screenshot is blank (one colour: {rgb.getpixel((0, 0))})")
    except (OSError, ValueError) as e:
        problems.append(f"the screenshot is not a readable PNG: {e}")
    return problems


def render(browser: str, page: Path, tmp: Path) -> tuple[str, Path]:
    """Open ``page`` in headless Chromium: its DOM after the scripts ran, and a screenshot."""
    shot = tmp / "page.png"
    proc = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}",
                           "--dump-dom", f"--screenshot={shot}", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-3000:]
    return proc.stdout, shot


def test_the_render_check_finds_problems(tmp_path):
    """The check fails a page with raw TeX, untypeset math, CDN MathJax, a missing image and a
    blank screenshot, and passes a page without them."""
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / LOCAL_MATHJAX).write_text("")
    (tmp_path / "a.png").write_bytes(b"")
    page = tmp_path / "p.html"
    blank, drawn = tmp_path / "blank.png", tmp_path / "drawn.png"
    Image.new("RGB", (20, 20), "white").save(blank)
    im = Image.new("RGB", (20, 20), "white")
    im.putpixel((3, 4), (0, 0, 0))
    im.save(drawn)
    good = (f'<script src="{LOCAL_MATHJAX}"></script><p>Let <span class="math">'
            '<mjx-container><mjx-math></mjx-math></mjx-container></span> be.</p>'
            '<pre>\\frac in code is fine</pre><img src="a.png"><img src="data:image/png;base64,">')
    assert page_problems(page, good, drawn, expects_math=True) == []
    bad = ('<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
           '<p>Let <span class="math">\\(\\frac{1}{2}\\)</span>, $$x$$.</p><img src="b.png">'
           '<mjx-container><mjx-merror></mjx-merror></mjx-container>')
    found = "\n".join(page_problems(page, bad, blank, expects_math=True))
    for expected in (f"no <script> loads the book's own {LOCAL_MATHJAX}",
                     "MathJax loaded from outside the book", "1 of 1 math elements",
                     "TeX errors", "raw TeX in the text: …Let \\(\\frac", "$$x$$",
                     "missing file: b.png", "screenshot is blank"):
        assert expected in found, expected
    assert "source has math" in "\n".join(page_problems(page, "<p>x</p>", drawn, True))
    assert "not a readable PNG" in "\n".join(page_problems(page, good, page, True))


def test_has_math_ignores_code(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("Cost: `$5` and\n```{code-cell} ipython3\nx = '$a$'\n```\n")
    assert not has_math(page)
    page.write_text("Let $x$ be.")
    assert has_math(page)


@pytest.fixture(scope="module")
def built_book(request) -> Path:
    """The ``_build/html`` to check: this session's build when its build test ran (a stale
    book would hide a failure), else an existing build."""
    if os.environ.get("NCTUTOR_SKIP_BOOK"):
        pytest.skip("NCTUTOR_SKIP_BOOK is set")
    if chromium() is None:
        pytest.skip("Chromium not found: install Debian's `chromium` package (.ci/run does) "
                    "to check the book in a browser")
    built_here = any(item.nodeid == BUILD_TEST for item in request.session.items)
    if built_here:  # the build test touches this stamp after a successful build
        stamp = HTML / ".built-by-tests"
        assert stamp.exists() and stamp.stat().st_mtime >= COLLECTED_AT, (
            f"{BUILD_TEST} is in this session but did not (re)build _build/html")
    elif not (HTML / "objects.inv").exists():
        pytest.skip("no built book in _build/html: run `make book` (or tests/test_book.py)")
    return HTML


@pytest.mark.book
@pytest.mark.parametrize("entry", toc_files())
def test_page_renders_in_chromium(entry, built_book, tmp_path):
    """The book as a reader sees it, offline: typeset math from the local MathJax, images,
    a drawn page. About 2-3 s a page."""
    page = built_book / (entry + ".html")
    assert page.exists(), f"{entry} was not built"
    dom, shot = render(chromium(), page, tmp_path)
    problems = page_problems(page, dom, shot, expects_math=has_math(source(entry)))
    assert problems == [], f"{entry}:\n" + "\n".join(problems)
