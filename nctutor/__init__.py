"""nctutor: the companion package of the book *Neural compression, derived*.

Each module holds the code of one idea, and each public function names the
section of the book that defines it (as d2l does). Import the modules you need:

>>> from nctutor import config, data
"""

__version__ = "0.1.0"

import importlib as _importlib
import importlib.util as _importlib_util
import os as _os
import sys as _sys
import types as _types
import warnings as _warnings
from collections import UserDict as _UserDict
from functools import cached_property as _cached_property

# CompressAI 1.2.8 calls torch.jit.script at import time, which recent torch deprecates with a
# FutureWarning on every import; it is not ours to fix and would clutter every page of the book.
_warnings.filterwarnings(
    "ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning
)


# `import compressai` also imports its point-cloud datasets and transforms, and a table of
# torchvision's and PyTorch Geometric's transforms by name (compressai.registry.TRANSFORMS):
# torch_geometric, torchvision and torch._dynamo, seconds on a small machine that no image codec
# needs (`nctutor compress` took 7 s, most of it these imports). Until compressai is imported,
# stand-ins hold their places in sys.modules; the first read of an attribute of one imports the
# real module, which then replaces it. Nothing is lost, only delayed (tests/test_imports.py); but
# compressai.registry.DATASETS names compressai's datasets only from their first use on.
class _Deferred(_types.ModuleType):
    """A module not imported yet: reading one of its attributes imports it and reads it there."""

    def __init__(self, name: str, file: str, package: bool = False, **attrs) -> None:
        super().__init__(name)
        where = [_os.path.dirname(file)] if package else None  # submodules import as usual
        self.__spec__ = _importlib_util.spec_from_file_location(
            name, file, submodule_search_locations=where)
        if package:
            self.__path__ = where
        self.__dict__.update(attrs)

    def __getattr__(self, attr: str):
        if attr.startswith("__"):  # __file__, __all__…: asked by tools that scan sys.modules
            raise AttributeError(attr)
        return getattr(_real(self.__name__), attr)


def _real(name: str) -> _types.ModuleType:
    """Import the real module ``name`` in place of its stand-in."""
    if isinstance(_sys.modules.get(name), _Deferred):
        del _sys.modules[name]
    return _importlib.import_module(name)


class _DeferredTable(_UserDict):
    """compressai.registry.TRANSFORMS, as compressai.registry binds it: on first use (reading or
    registering) the real table, with compressai's point-cloud transforms registered in it."""

    def __init__(self) -> None:  # not UserDict's, which would set self.data
        pass

    @_cached_property
    def data(self) -> dict:
        real = _real("compressai.registry.transforms")
        _real("compressai.transforms")  # registers its transforms in real.TRANSFORMS
        table, real.TRANSFORMS = real.TRANSFORMS, self  # one table, whoever registers
        return table


def _defer_compressai_extras() -> None:
    spec = _importlib_util.find_spec("compressai")
    if "compressai" in _sys.modules or spec is None:
        return
    root = spec.submodule_search_locations[0]
    files = {sub: _os.path.join(root, *sub.split("."), "__init__.py")
             for sub in ("datasets", "transforms")}
    files["registry.transforms"] = _os.path.join(root, "registry", "transforms.py")
    if not all(map(_os.path.isfile, files.values())):  # another layout than CompressAI 1.2.8's
        return
    for sub in ("datasets", "transforms"):
        _sys.modules[f"compressai.{sub}"] = _Deferred(f"compressai.{sub}", files[sub], True)
    name = "compressai.registry.transforms"
    _sys.modules[name] = _Deferred(
        name, files["registry.transforms"], TRANSFORMS=_DeferredTable(),
        register_transform=lambda key: _real(name).register_transform(key))


_defer_compressai_extras()
