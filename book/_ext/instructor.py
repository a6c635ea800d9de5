"""The instructor build: every exercise's solution shown open instead of in a closed dropdown.

Students read the book with each solution folded (``:class: dropdown`` on every ``{solution}``);
``make book-instructor`` builds the same book into ``_build/instructor`` with
``NCTUTOR_INSTRUCTOR=1``, and this extension then removes the ``dropdown`` class from every
solution, so an instructor reads (or prints) the solutions inline. Described on the page
*How to run this book*.
"""

from __future__ import annotations

import os

from sphinx.application import Sphinx


def open_solutions(app: Sphinx, doctree, docname: str) -> None:
    """Remove the ``dropdown`` class of every solution node when the build is the instructor's."""
    if not app.config.nctutor_instructor:
        return
    from sphinx_exercise.nodes import solution_node

    for node in doctree.findall(solution_node):
        node["classes"] = [c for c in node["classes"] if c != "dropdown"]


def setup(app: Sphinx) -> dict:
    app.add_config_value("nctutor_instructor", bool(os.environ.get("NCTUTOR_INSTRUCTOR")), "env")
    app.connect("doctree-resolved", open_solutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
