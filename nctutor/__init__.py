"""nctutor: the companion package of the book *Neural compression, derived*.

Each module holds the code of one idea, and each public function names the
section of the book that defines it (as d2l does). Import the modules you need:

>>> from nctutor import config, data
"""

__version__ = "0.1.0"
