"""A pickle loader that admits numpy arrays and plain containers only.

Detectron, Detectron2 and the MSRA Caffe2 conversions ship weights as pickles of numpy arrays. `pickle.load`
would run any callable such a file names; `load_pickle` refuses everything but the few globals that numpy
arrays, numpy scalars and plain containers need.
"""
import builtins
import codecs
import collections
import os
import pickle

import numpy as np

try:
    from numpy._core import multiarray, numeric
except ImportError:  # numpy < 1.26 has only the `numpy.core` spelling
    from numpy.core import multiarray, numeric

# Protocols up to 4 rebuild arrays with `multiarray._reconstruct`, protocol 5 with `numeric._frombuffer`.
_NUMPY_GLOBALS = {
    "multiarray": {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar},
    "numeric": {"_frombuffer": numeric._frombuffer},
}

ALLOWED_GLOBALS = {
    **{(f"numpy.{core}.{module}", name): obj for core in ("core", "_core")
       for module, objects in _NUMPY_GLOBALS.items() for name, obj in objects.items()},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): codecs.encode,
    **{(module, name): getattr(builtins, name) for module in ("builtins", "__builtin__")
       for name in ("set", "frozenset", "bytearray", "complex")},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` resolves only the names in `ALLOWED_GLOBALS`."""

    def __init__(self, file, path: str):
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        """Returns the allowed global `module.name`.

        Raises:
            pickle.UnpicklingError: `module.name` is not in `ALLOWED_GLOBALS`.
        """
        try:
            return ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load global {module}.{name} from {self.path}: "
                "only numpy arrays and plain containers are allowed in a pickled checkpoint"
            ) from None


def load_pickle(path: str | os.PathLike) -> object:
    """Unpickles `path`, admitting only numpy arrays, numpy scalars and plain containers.

    Strings pickled by Python 2 are decoded as latin-1, which is what numpy needs to rebuild Python 2 arrays.

    Args:
        path: The pickle file.

    Returns:
        The unpickled object.

    Raises:
        pickle.UnpicklingError: The file names a global outside the allowed set (the message names it and the
            file), or the file is not a valid pickle.
    """
    with open(path, "rb") as file:
        return _RestrictedUnpickler(file, os.fspath(path)).load()
