"""nctutor: the companion package of the book *Neural compression, derived*.

Each module holds the code of one idea, and each public function names the
section of the book that defines it (as d2l does). Import the modules you need:

>>> from nctutor import config, data
"""

__version__ = "0.1.0"

import warnings as _warnings

# CompressAI 1.2.8 calls torch.jit.script at import time, which recent torch deprecates with a
# FutureWarning on every import; it is not ours to fix and would clutter every page of the book.
_warnings.filterwarnings(
    "ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning
)
