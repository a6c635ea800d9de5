"""Serve MathJax from the book itself, so its math renders offline.

``make install`` fetches MathJax 3 into ``book/_vendor/mathjax`` (not committed); this extension
adds ``book/_vendor`` to ``html_static_path`` by its absolute path, so that the full build (run
from the repository root) and a single-page build (run from ``book/``) both copy it to
``_static/mathjax``, where ``mathjax_path`` in ``_config.yml`` points. (Jupyter Book would add
every ``.js`` file of a ``_static`` folder of the source folder as a script; hence ``_vendor``.)
Checked in a browser by tests/test_render.py.
"""

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

VENDOR = Path(__file__).resolve().parents[1] / "_vendor"
logger = logging.getLogger(__name__)


def add_vendor_static(app: Sphinx, config: Config) -> None:
    if not (VENDOR / "mathjax" / "tex-chtml.js").is_file():
        logger.warning(f"MathJax is missing from {VENDOR}: run `make install` (the math of the "
                       "book would not render)")
        return
    config.html_static_path = [*config.html_static_path, str(VENDOR)]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", add_vendor_static)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
