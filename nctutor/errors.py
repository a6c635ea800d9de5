"""The errors nctutor raises for what a user gave it, one class per kind of input.

Chapter *How to run this book* (sections *Data* and *Training from the command line*) and
*Transform coding with learned priors → Real bitstreams*. Each message says what is wrong and
what to do; the command line prints it as one line (``nctutor: error: …``, exit status 2).
"""

from __future__ import annotations


class NctutorError(Exception):
    """Base class of the errors below: something the user gave cannot be used.

    Caught by the command line (chapter *How to run this book → Training from the command
    line*); no page raises it.
    """


class DataError(NctutorError, RuntimeError):
    """A data file is missing, unreadable or fails its checksum. The message says what to do.

    Described in book section *How to run this book → Data* (offline, it names the layout).
    """


class BitstreamError(NctutorError, ValueError):
    """A compressed file cannot be decoded: truncated, corrupted, foreign, unsupported, implausible,
    or made by another model. The message says which.

    Defined in book section *Transform coding with learned priors → Real bitstreams*.
    """


class CheckpointError(NctutorError, RuntimeError):
    """A checkpoint or weights file cannot be used (corrupted, or made for another model/config).

    Used by the chapter *How to run this book → Training from the command line* (resumable runs).
    """


class ZooError(NctutorError, RuntimeError):
    """A model cannot be obtained: no weights for it (and training was not asked for), or
    CompressAI's pretrained weights while offline.

    Raised by :func:`nctutor.zoo.load` (book section *Transform coding with learned priors → How
    this book uses them*).
    """
