"""Every place in the book that a docstring names exists (house rule: docstrings cite the book).

A reference is an emphasised (``*…*``) or double-quoted title. ``*Page → Section → Subsection*``
names a page (its first ``#`` heading: a book page ``book/**/*.md`` or a notebook
``notebooks/*.ipynb``) and a chain of headings under it, in order. Without an arrow, the word
before it says what it names:

- ``chapter *Page*``, ``chapters *A*, *B* and *C*``, ``the book *Page*``: a page;
- ``the notebook *Page*``: a page that is a notebook (an arrow chain after "notebook" too);
- ``section *S*``, ``sections *S* and *T*``, ``its section *S*``, ``that page's *S*``: a heading
  of the page named last before it in the same docstring;
- ``part *P*``: a part caption of ``_toc.yml``.

"book section", "book chapter", "Chapter", "the chapter" and "the notebook" must be followed by a
title; a page path given after a title, ``(``book/x.md``)``, must be that page's file. Other
emphasis is prose, unless it nearly matches a title or heading (a likely typo). On top, each
module docstring cites a book place and each public function or class docstring cites one or says
"no page calls it". The sources are parsed with :mod:`ast`, never imported (no torch).
"""

import ast
import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nctutor"
ARROW = "→"
NO_PAGE = "no page calls it"

# --- the book: page titles, their headings, the toc's parts --------------------------------------

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
ANCHOR = re.compile(r"\s*\{#[^}]*\}\s*$")


def normalise(text: str) -> str:
    """How both sides are compared: one space, plain quotes and dashes, no ``*``, no backticks."""
    for fancy, plain in (("‘’‛′", "'"), ("“”„″", '"'), ("‐‑‒–—−", "-")):
        text = re.sub(f"[{fancy}]", plain, text)
    text = text.replace("*", "").replace("`", "")
    return " ".join(text.split())


def markdown_headings(text: str) -> list[tuple[int, str]]:
    """``(level, title)`` of every ATX heading outside YAML front matter and fenced blocks."""
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":  # front matter (jupytext header)
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), 0)
        lines = lines[end + 1 :]
    headings, fence = [], ""
    for line in lines:
        opening = FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                if not line.strip().lstrip(fence[0]):
                    fence = ""
            continue
        if opening:
            fence = opening.group(1)
            continue
        match = HEADING.match(line)
        if match:
            headings.append((len(match.group(1)), normalise(ANCHOR.sub("", match.group(2)))))
    return headings


@dataclass
class Page:
    title: str
    file: str  # relative to the repository root
    notebook: bool
    sections: list[tuple[int, str]]  # every heading after the title, in order


@dataclass
class Book:
    pages: dict[str, Page]  # by normalised title
    parts: set[str]


def make_page(file: str, notebook: bool, markdown: list[str]) -> Page:
    """A page from its markdown (one string per markdown cell); the title is the first ``#``."""
    first = markdown_headings(markdown[0]) if markdown else []
    titles = [text for level, text in first if level == 1]
    if not titles:
        raise AssertionError(f"{file}: no '# ' title" + (" in its first cell" if notebook else ""))
    headings = [heading for cell in markdown for heading in markdown_headings(cell)]
    after = headings[headings.index((1, titles[0])) + 1 :]
    return Page(titles[0], file, notebook, after)


def load_book(root: Path = ROOT) -> Book:
    pages = []
    for file in sorted((root / "book").rglob("*.md")):
        pages.append(make_page(file.relative_to(root).as_posix(), False, [file.read_text()]))
    for file in sorted((root / "notebooks").glob("*.ipynb")):
        cells = json.loads(file.read_text())["cells"]
        markdown = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
        pages.append(make_page(file.relative_to(root).as_posix(), True, markdown))
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    parts = {normalise(part["caption"]) for part in toc.get("parts", []) if "caption" in part}
    return Book({page.title: page for page in pages}, parts)


# --- references in a text ---------------------------------------------------------------------

# Inline literals and roles are code, never references: blanked (newlines kept, so lines count).
LITERAL = re.compile(r"``.+?``|:[\w:.-]+:`[^`]+`|`[^`\n]+`", re.S)
# *text*: not ** (bold), not inside a word, no blank line inside, no space just inside the stars.
EMPHASIS = re.compile(r"(?<![*\w\\])\*(?![\s*])((?:[^*\n]|\n(?![ \t]*\n))+?)(?<![\s\\])\*(?![*\w])")
QUOTED = re.compile(r"\"((?:[^\"\n]|\n(?![ \t]*\n))+)\"|“((?:[^“”\n]|\n(?![ \t]*\n))+)”")
PAGE_WORD = re.compile(r"\b(?:chapters?|the book|(notebooks?))$", re.I)
SECTION_WORD = re.compile(r"\b(?:sections?|page's)$", re.I)
PART_WORD = re.compile(r"\bpart$", re.I)
AND = re.compile(r"^(?:,|(?:, ?)?(?:and|or))(?: the)?$")  # between two items of one list
# Words that always introduce a reference: a title must follow them.
BARE = re.compile(
    r"\b(?:book sections?|book chapters?|the chapters?|Chapters?|the notebook)\b(?!\s*[*\"“])"
)
PATH_AFTER = re.compile(r"^\s*\(\s*((?:book|notebooks)/\S+?\.(?:md|ipynb))\s*\)")


@dataclass
class Ref:
    offset: int  # in the text
    shown: str  # as written, with its stars or quotes (whitespace collapsed)
    # "chain" (a page, then headings), "section", "part", "guess" (emphasis with no word before it
    # saying what it names) or "bare" (a word that needs a title but has none)
    kind: str
    chain: tuple[str, ...]
    notebook: bool = False  # named as "the notebook …"
    path: str = ""  # a ``book/….md`` given just after it


def find_refs(text: str) -> list[Ref]:
    """Every reference to a book place in ``text`` (a docstring or a ``#:`` comment), in order."""
    masked = LITERAL.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    spans = [(m.start(), m.end(), m.group(1)) for m in EMPHASIS.finditer(masked)]
    for m in QUOTED.finditer(masked):  # "…" is a reference if it has an arrow or a word before it
        inner, before = m.group(1) or m.group(2), " ".join(masked[: m.start()].split())
        if ARROW in inner or PAGE_WORD.search(before) or SECTION_WORD.search(before):
            spans = [s for s in spans if not m.start() <= s[0] < m.end()]
            spans.append((m.start(), m.end(), inner))
    refs: list[Ref] = []
    previous_end, previous = 0, None
    for start, end, inner in sorted(spans):
        shown = " ".join(masked[start:end].split())
        before = " ".join(masked[:start].split())[-60:]
        between = " ".join(masked[previous_end:start].split())
        page_word = PAGE_WORD.search(before)
        if ARROW in shown or page_word:
            kind = "chain"
        elif SECTION_WORD.search(before):
            kind = "section"
        elif PART_WORD.search(before):
            kind = "part"
        elif previous is not None and previous.kind != "guess" and AND.match(between):
            kind = previous.kind
        else:
            kind = "guess"
        if kind == "chain":
            notebook = bool(page_word and page_word.group(1))
            if not page_word and previous is not None and AND.match(between):
                notebook = previous.notebook
            chain = tuple(normalise(part) for part in inner.split(ARROW))
        else:
            notebook, chain = False, (normalise(inner),)
        path = PATH_AFTER.match(text[end:].replace("``", "")) if kind == "chain" else None
        ref = Ref(start, shown, kind, chain, notebook, path.group(1) if path else "")
        refs.append(ref)
        previous, previous_end = ref, end
    for m in BARE.finditer(masked):
        refs.append(Ref(m.start(), m.group(), "bare", (m.group(),)))
    return sorted(refs, key=lambda ref: ref.offset)


def closest(name: str, candidates: list[str]) -> str:
    found = difflib.get_close_matches(name, candidates, n=3, cutoff=0.4)
    return "; closest: " + ", ".join(f"*{c}*" for c in found) if found else ""


def under(page: Page, chain: tuple[str, ...]) -> bool:
    """Whether ``chain`` is a path of headings of ``page``, each under the one before it."""

    def rest(start: int, parent_level: int, names: tuple[str, ...]) -> bool:
        if not names:
            return True
        for i in range(start, len(page.sections)):
            level, text = page.sections[i]
            if level <= parent_level:
                return False
            if text == names[0] and rest(i + 1, level, names[1:]):
                return True
        return False

    return rest(0, 1, chain)


def check_text(text: str, book: Book) -> tuple[int, list[tuple[Ref, str]]]:
    """How many book places ``text`` names, and what is wrong with each wrong reference."""
    errors: list[tuple[Ref, str]] = []
    cited, context = 0, None
    titles = list(book.pages)
    for ref in find_refs(text):
        name = ref.chain[0]
        problem = ""
        if ref.kind == "chain":
            context = book.pages.get(name)
            if context is None:
                problem = f"no page titled *{name}*" + closest(name, titles)
            elif ref.notebook and not context.notebook:
                problem = f"*{name}* is {context.file}, not a notebook"
            elif ref.path and ref.path != context.file:
                problem = f"*{name}* is {context.file}, not {ref.path}"
            elif not under(context, ref.chain[1:]):
                problem = missing(ref.chain[1:], context)
        elif ref.kind == "section":
            if context is None:
                problem = "a section of no page: write *Page → Section*"
            elif not under(context, ref.chain):
                problem = missing(ref.chain, context)
        elif ref.kind == "bare":
            errors.append((ref, "no *Title* after it"))
            continue
        elif ref.kind == "part":
            if name not in book.parts:
                problem = "no part of _toc.yml has this caption" + closest(name, sorted(book.parts))
        else:  # prose: an exact title counts as a reference, a near miss is a typo
            headings = [heading for _, heading in context.sections] if context else []
            if name in book.pages:
                context = book.pages[name]
            elif name not in headings:
                if not difflib.get_close_matches(name, titles + headings, n=1, cutoff=0.85):
                    continue  # plain emphasis
                problem = "looks like a book place but is none" + closest(name, titles + headings)
        cited += 1
        if problem:
            errors.append((ref, problem))
    return cited, errors


def missing(chain: tuple[str, ...], page: Page) -> str:
    """What is wrong with a chain of headings that is not under ``page``."""
    k = next(k for k in range(1, len(chain) + 1) if not under(page, chain[:k]))
    where = f"under *{' → '.join((page.title,) + chain[: k - 1])}* ({page.file})"
    names = [text for _, text in page.sections]
    return f"no heading *{chain[k - 1]}* {where}" + closest(chain[k - 1], names)


# --- the package's docstrings and ``#:`` comments ------------------------------------------------

DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass
class Text:
    file: str
    line: int  # of the text's first line
    text: str
    needs: str  # "" or what the house rule wants of it: "module" or "public"
    name: str


def docstring(node: ast.AST) -> tuple[int, str] | None:
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if isinstance(body[0].value.value, str):
            return body[0].value.lineno, body[0].value.value
    return None


def package_texts(package: Path = PACKAGE) -> list[Text]:
    """Every docstring (modules, classes, functions, nested ones too) and ``#:`` comment block."""
    texts = []
    for path in sorted(package.rglob("*.py")):
        file = path.relative_to(package.parent).as_posix()
        source = path.read_text()
        tree = ast.parse(source)
        public = {n for n in tree.body if isinstance(n, DEFS) and not n.name.startswith("_")}
        for node in ast.walk(tree):
            if node is not tree and not isinstance(node, DEFS):
                continue
            found = docstring(node)
            needs = "module" if node is tree else "public" if node in public else ""
            name = file if node is tree else node.name
            line, text = found if found else (getattr(node, "lineno", 1), "")
            if found or needs:
                texts.append(Text(file, line, text, needs, name))
        block: list[str] = []
        for number, line in enumerate(source.splitlines() + [""], start=1):
            comment = re.match(r"\s*#:\s?(.*)", line)
            if comment:
                block.append(comment.group(1))
            elif block:
                texts.append(Text(file, number - len(block), "\n".join(block), "", "#:"))
                block = []
    return texts


def problems(texts: list[Text], book: Book) -> list[str]:
    """One ``file:line: …`` per wrong reference and per docstring that breaks the house rule."""
    found: list[tuple[str, int, str]] = []
    for item in texts:
        cited, errors = check_text(item.text, book)
        for ref, problem in errors:
            line = item.line + item.text.count("\n", 0, ref.offset)
            found.append((item.file, line, f"{ref.shown}: {problem}"))
        what = "module" if item.needs == "module" else item.name
        if item.needs and not item.text:
            found.append((item.file, item.line, f"{what}: no docstring (it must cite the book)"))
        elif item.needs and not cited and NO_PAGE not in " ".join(item.text.split()):
            rule = "" if item.needs == "module" else f" and does not say '{NO_PAGE}'"
            found.append((item.file, item.line, f"{what}: its docstring cites no book place{rule}"))
    return [f"{file}:{line}: {message}" for file, line, message in sorted(found)]


# --- the tests ------------------------------------------------------------------------------------


def test_every_book_reference_resolves():
    found = problems(package_texts(), load_book())
    if found:
        pytest.fail(f"{len(found)} wrong or missing book references:\n" + "\n".join(found), False)


# --- the checker itself, on a small made-up book ----------------------------------------------

PAGE = """---
jupytext:
  formats: md:myst
---

(coding-label)=
# Coding *fast*

```{code-cell} ipython3
# Not a title
## Nor a heading
```

## Rates {#rates}

### Exact coding

## Bits and ‘quotes’

````{admonition} A note
```python
## inside a fence inside a fence
```
````
"""
SMALL = Book(
    {
        page.title: page
        for page in (
            make_page("book/a.md", False, [PAGE]),
            make_page("notebooks/b.ipynb", True, ["# A notebook\n\n## Plot", "text\n\n## Later"]),
        )
    },
    {"Part one"},
)


def test_headings_skip_front_matter_fences_labels_and_anchors():
    assert markdown_headings(PAGE) == [
        (1, "Coding fast"),
        (2, "Rates"),
        (3, "Exact coding"),
        (2, "Bits and 'quotes'"),
    ]
    assert SMALL.pages["A notebook"].sections == [(2, "Plot"), (2, "Later")]


@pytest.mark.parametrize(
    "text",
    [
        "Defined in book section *Coding fast → Rates → Exact coding*.",
        "Defined in book section *Coding fast → Exact\n    coding*; no page calls it.",
        "Chapter *Coding fast* (sections *Rates*, *Exact coding* and *Bits and ’quotes’*).",
        "Defined in book section \"Coding fast → Bits and 'quotes'\".",
        "Used in book sections *Coding fast → Rates* and *A notebook → Later*.",
        "Used in the notebook *A notebook → Plot*; see its section *Later*.",
        "Chapter *Coding fast* (``book/a.md``), part *Part one*.",
        "Shown in *Coding fast*, named in that page's *Rates*; *plain* emphasis and ``*args``.",
    ],
)
def test_right_references_pass(text):
    cited, errors = check_text(text, SMALL)
    assert errors == []
    assert cited >= 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("book section *Coding fast → Rate*", "no heading *Rate* under *Coding fast* (book/a.md)"),
        ("book section *Coding fast → Rate*", "closest: *Rates*"),
        (
            "book section *Coding fats → Rates*",
            "no page titled *Coding fats*; closest: *Coding fast*",
        ),
        ("*Coding fast → Exact coding → Rates*", "no heading *Rates* under *Coding fast → Exact"),
        ("*Coding fast → Bits and 'quotes' → Exact coding*", "no heading *Exact coding* under"),
        ('book section "Coding fast → Rates → Exact cding"', "no heading *Exact cding*"),
        ("the notebook *Coding fast → Rates*", "is book/a.md, not a notebook"),
        ("Chapter *Coding fast*, section *Ratse*", "no heading *Ratse* under *Coding fast*"),
        ("Chapter *Coding fast* (sections *Rates* and *Bits*)", "no heading *Bits*"),
        ("Used again in its section *Rates*.", "a section of no page"),
        ("Chapter *A notebook* (``book/a.md``)", "is notebooks/b.ipynb, not book/a.md"),
        ("part *Part two*", "no part of _toc.yml has this caption; closest: *Part one*"),
        ("Defined in book section Coding fast → Rates.", "book section: no *Title* after it"),
        ("As in *Coding fsat*.", "looks like a book place but is none; closest: *Coding fast*"),
    ],
)
def test_wrong_references_are_reported(text, expected):
    _, errors = check_text(text, SMALL)
    assert len(errors) == 1
    ref, problem = errors[0]
    assert expected in f"{ref.shown}: {problem}"


def test_report_names_file_line_and_the_house_rule(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text(
        '"""A module that cites nothing."""\n'
        "\n"
        "#: A constant of *Coding fast → Exact*.\n"
        "X = 1\n"
        "\n"
        "\n"
        "def cited():\n"
        '    """Computes.\n'
        "\n"
        "    Defined in book section *Coding fast →\n"
        '    Rats*."""\n'
        "\n"
        "\n"
        "def uncited():\n"
        '    """Computes."""\n'
        "\n"
        "\n"
        "def unused():\n"
        '    """Computes; no page\n    calls it."""\n'
        "\n"
        "\n"
        "def _private():\n"
        '    """Computes."""\n'
        "\n"
        "\n"
        "class Bare:\n"
        "    def method(self):\n"
        '        """See the notebook *Coding fast*."""\n'
    )
    found = problems(package_texts(package), SMALL)
    assert found == [
        "pkg/mod.py:1: module: its docstring cites no book place",
        "pkg/mod.py:3: *Coding fast → Exact*: no heading *Exact* under *Coding fast* (book/a.md); "
        "closest: *Exact coding*, *Rates*",
        "pkg/mod.py:10: *Coding fast → Rats*: no heading *Rats* under *Coding fast* (book/a.md); "
        "closest: *Rates*",
        "pkg/mod.py:15: uncited: its docstring cites no book place and does not say "
        "'no page calls it'",
        "pkg/mod.py:27: Bare: no docstring (it must cite the book)",
        "pkg/mod.py:29: *Coding fast*: *Coding fast* is book/a.md, not a notebook",
    ]
