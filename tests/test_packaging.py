"""The package states ranges, not pins: installing it keeps a user's torch. The exact versions live in
constraints.txt, which `make` and CI install with."""
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).parents[1]
GPU_MACHINES = {"torch": Version("2.11"), "torchvision": Version("0.26")}  # the oldest versions we run on


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(text) for text in project["dependencies"] + extras]


def test_no_dependency_is_pinned_exactly():
    pinned = [str(r) for r in _requirements() if any(s.operator in ("==", "===") for s in r.specifier)]
    assert not pinned, f"exact pins belong in constraints.txt: {pinned}"


def test_torch_ranges_admit_the_gpu_machines_and_the_constraints():
    requirements = {r.name: r for r in _requirements()}
    constraints = dict(re.findall(r"^([\w-]+)==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE))
    assert set(constraints) == set(GPU_MACHINES)
    for name, oldest in GPU_MACHINES.items():
        assert requirements[name].specifier.contains(oldest), name
        assert requirements[name].specifier.contains(Version(constraints[name])), name
