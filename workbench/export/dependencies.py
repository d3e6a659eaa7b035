"""onnx and onnxruntime: the optional `export` extra, imported only when an ONNX file is written or run."""
import importlib
from types import ModuleType

from workbench.errors import UserError

INSTALL_HINT = 'pip install -e ".[export]"'


def require(module: str) -> ModuleType:
    """The module `module` ("onnx" or "onnxruntime") of the export extra.

    Raises:
        UserError: it is not installed; the message says which extra to install.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise UserError(f"ONNX export needs the optional package {module!r}, which is not installed: "
                        f"{INSTALL_HINT} (onnx, onnxruntime, onnxscript)") from error


def require_onnx_extra() -> None:
    """Checks that onnx and onnxruntime can be imported, before any model is built."""
    require("onnx")
    require("onnxruntime")
