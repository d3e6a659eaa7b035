"""Old import paths of what moved, kept working for one release with a DeprecationWarning that names the new path:
whole modules (`register_moved_modules`) and names of a module that stays (`moved_names`).

Example:
    register_moved_modules({"heads.roi_align": "heads.ops.roi_align"})  # in heads/__init__.py
    from heads.roi_align import MultiScaleRoIAlign  # warns; the class of heads.ops.roi_align

    __getattr__ = moved_names(__name__, {"predict": ("workbench.evaluation.detector", "detect_dataset")})
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds each old module name and loads it as the module at its new name (one object under both names)."""

    def __init__(self):
        self.moved: dict[str, str] = {}

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in self.moved:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new_name = self.moved[spec.name]
        # stacklevel 2: warnings skips the import machinery's frames, so this names the importing line
        warnings.warn(f"{spec.name} is deprecated: import {new_name}", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new_name)

    def exec_module(self, module) -> None:
        """Nothing to run: the module at the new name is already loaded."""


_FINDER = MovedModules()
sys.meta_path.append(_FINDER)


def register_moved_modules(moved: dict[str, str]) -> None:
    """Makes each old module name of `moved` import its new one, with a DeprecationWarning."""
    _FINDER.moved.update(moved)


def moved_modules() -> dict[str, str]:
    """Every registered old module name and its new name."""
    return dict(_FINDER.moved)


def moved_names(module_name: str, moved: dict[str, tuple[str, str]]) -> Callable[[str], object]:
    """The `__getattr__` of module `module_name` that gives each old name of `moved` as its (new module, new name),
    with a DeprecationWarning, and raises AttributeError for any other name."""
    def __getattr__(name: str) -> object:  # noqa: N807 (the module attribute hook's name)
        if name not in moved:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        new_module, new_name = moved[name]
        warnings.warn(f"{module_name}.{name} is deprecated: import {new_name} from {new_module}", DeprecationWarning,
                      stacklevel=2)
        return getattr(importlib.import_module(new_module), new_name)

    return __getattr__
