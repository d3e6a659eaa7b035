"""Old import paths of modules that moved, kept working for one release: importing one gives the module at its new
path, with a DeprecationWarning that names it.

Example:
    register_moved_modules({"heads.roi_align": "heads.ops.roi_align"})  # in heads/__init__.py
    from heads.roi_align import MultiScaleRoIAlign  # warns; the class of heads.ops.roi_align
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings


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
