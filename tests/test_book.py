"""The book: every page is in the toc, starts with the same Colab cell, and the build passes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COLAB_CELL = '''# Colab only: install nctutor and fetch the data. Does nothing elsewhere.
import sys
if "google.colab" in sys.modules:
    import subprocess
    # --no-deps, and only what Colab lacks: CompressAI's numpy<2 pin is metadata only (it runs
    # under numpy 2), and pip would downgrade numpy under the running kernel, which breaks
    # imports until a restart.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "nctutor @ git+https://github.com/nctutor/nctutor", "compressai==1.2.8",
                    "einops", "pytorch-msssim", "constriction", "torchquad", "loguru", "autoray",
                    "bjontegaard", "pillow-heif", "imageio", "imageio-ffmpeg"], check=True)
    from nctutor import data
    data.fetch("kodak")'''


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def source(entry: str) -> Path:
    for ext in (".md", ".ipynb"):
        if (ROOT / (entry + ext)).exists():
            return ROOT / (entry + ext)
    raise FileNotFoundError(entry)


def first_code_cell(file: Path) -> tuple[str, list[str]] | None:
    if file.suffix == ".ipynb":
        cells = [c for c in json.loads(file.read_text())["cells"] if c["cell_type"] == "code"]
        if not cells:
            return None
        src = cells[0]["source"]
        code = "".join(src) if isinstance(src, list) else src
        return code, cells[0]["metadata"].get("tags", [])
    text = file.read_text()
    start = text.find("```{code-cell}")
    if start < 0:
        return None
    body = text[text.index("\n", start) + 1 : text.index("\n```", start)]
    lines = body.splitlines()
    tags = []
    while lines and lines[0].startswith(":"):
        key, _, value = lines.pop(0)[1:].partition(":")
        if key.strip() == "tags":
            tags = [t.strip() for t in value.strip().strip("[]").split(",")]
    return "\n".join(lines).strip(), tags


def test_every_toc_entry_exists():
    for entry in toc_files():
        assert source(entry).exists()


def test_every_page_with_code_starts_with_the_colab_cell():
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert f"git+{url}\"" in COLAB_CELL  # one repository URL: the config's
    pages = [source(e) for e in toc_files()] + sorted((ROOT / "notebooks").glob("*.ipynb"))
    with_code = 0
    for page in pages:
        cell = first_code_cell(page)
        if cell is None:
            continue
        with_code += 1
        code, tags = cell
        assert code == COLAB_CELL, f"{page}: first code cell is not the Colab cell"
        assert "colab" in tags and "remove-cell" in tags, page
    assert with_code >= 2


def broken_links(html_root: Path) -> list[tuple[str, str]]:
    """Internal links of a built HTML book that lead nowhere: a missing file, or an anchor
    (``#id``) that the target page does not define. External links are not followed."""
    import html as _html
    import re
    from urllib.parse import unquote, urlsplit

    pages = sorted(html_root.rglob("*.html"))
    ids = {p.resolve(): set(re.findall(r'\bid="([^"]+)"', p.read_text(errors="replace")))
           for p in pages}
    bad = []
    for page in pages:
        for href in re.findall(r'<a\s[^>]*href="([^"]+)"', page.read_text(errors="replace")):
            href = _html.unescape(href)
            url = urlsplit(href)
            if url.scheme or href.startswith("//"):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page.resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists() or (url.fragment and target.suffix == ".html"
                                       and url.fragment not in ids.get(target, set())):
                bad.append((str(page.relative_to(html_root)), href))
    return bad


def test_the_link_check_finds_broken_links(tmp_path):
    (tmp_path / "a.html").write_text('<a href="b.html#x">ok</a> <a href="b.html#y">bad anchor</a>'
                                     ' <a href="c.html">missing</a> <a href="#top">own</a>'
                                     ' <a href="https://example.org/">external</a><p id="top"/>')
    (tmp_path / "b.html").write_text('<h1 id="x">B</h1>')
    assert broken_links(tmp_path) == [("a.html", "b.html#y"), ("a.html", "c.html")]


@pytest.mark.book
def test_book_builds_and_has_every_page():
    """The README's book command: executes every page (smoke profile); a raising cell fails."""
    if os.environ.get("NCTUTOR_SKIP_BOOK"):
        pytest.skip("NCTUTOR_SKIP_BOOK is set")
    jb = Path(sys.executable).parent / "jupyter-book"
    if os.environ.get("CI"):
        shutil.rmtree(ROOT / "_build" / ".jupyter_cache", ignore_errors=True)
    env = {**os.environ, "NCTUTOR_PROFILE": "smoke"}
    env.pop("NCTUTOR_CACHE", None)  # the book's runs use the normal cache
    proc = subprocess.run([str(jb), "build", str(ROOT), "-W", "--keep-going"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    html = ROOT / "_build" / "html"
    assert (html / "index.html").exists()
    (html / ".built-by-tests").touch()  # tests/test_render.py checks this build, not an old one
    for entry in toc_files():
        page = html / (entry + ".html")
        assert page.exists(), entry
        text = page.read_text()
        for chunk in text.split('class="output stderr')[1:]:  # no warning printed into a page
            assert "Warning" not in chunk.split("</pre>")[0], f"{entry}: {chunk[:300]}"
        # every exercise has its solution, folded in this (the students') build
        exercises = text.count('class="exercise admonition"')
        assert text.count('class="solution dropdown admonition"') == exercises, entry
        assert 'class="solution admonition"' not in text, entry
    assert broken_links(html) == []  # every internal link and anchor of the built book


def test_the_instructor_build_opens_every_solution(monkeypatch):
    """``make book-instructor`` sets NCTUTOR_INSTRUCTOR=1: the extension drops the dropdown class
    of every solution, and leaves the student build's solutions folded."""
    import types

    from docutils import nodes
    from sphinx_exercise.nodes import solution_node

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        import instructor
    finally:
        sys.path.pop(0)

    def doctree():
        doc = nodes.section()
        doc += solution_node(classes=["solution", "dropdown"])
        doc += nodes.paragraph(classes=["dropdown"])  # not a solution: left alone
        return doc

    for flag, folded in ((True, False), (False, True)):
        app = types.SimpleNamespace(config=types.SimpleNamespace(nctutor_instructor=flag))
        doc = doctree()
        instructor.open_solutions(app, doc, "page")
        (sol,) = list(doc.findall(solution_node))
        assert ("dropdown" in sol["classes"]) is folded
        assert "dropdown" in doc.children[1]["classes"]
