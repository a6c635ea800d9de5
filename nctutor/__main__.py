"""``python -m nctutor …``: the ``nctutor`` command (:func:`nctutor.cli.main`), its exit status
passed on.

Described in book section *How to run this book → Training from the command line*; no page
runs it this way.
"""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
