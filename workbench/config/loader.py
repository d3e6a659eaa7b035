"""YAML configs with `_base_` inheritance, `key=value` overrides, and errors that name unknown keys.

A config is a nested dict. Every key must exist in its schema (`schemas.py`); an unknown key (in a file or an
override) is an error naming the new name of a renamed key, or else the closest valid key. Dicts listed in
`FREE_FORM` (options passed through to another API) accept any key.
"""
import copy
import difflib
import re
from pathlib import Path

import yaml

from workbench.config.schemas import KIND_TOOLS, RENAMED_KEYS, SCHEMAS
from workbench.errors import MissingFileError, UserError

FREE_FORM = ("model.options",)


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` as a float (YAML 1.1 asks for `1.0e-4`)."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def parse_yaml(text: str):
    """YAML text to Python values, with `ConfigLoader`."""
    return yaml.load(text, Loader=ConfigLoader)


def merge(base: dict, update: dict) -> dict:
    """Recursively merges `update` into a copy of `base`."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml(path: str | Path, base_of: Path | None = None) -> dict:
    """Reads a YAML config, resolving `_base_` (a path relative to the file, or a list of them) first."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"config file not found: {path}" + (f" (the _base_ of {base_of})" if base_of else ""))
    try:
        with open(path) as f:
            content = parse_yaml(f) or {}
    except yaml.YAMLError as error:
        raise UserError(f"config {path} is not valid YAML: {error}") from error
    if not isinstance(content, dict):
        raise UserError(f"config {path} must hold a mapping of keys, not {type(content).__name__}")
    bases = content.pop("_base_", [])
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = merge(merged, read_yaml(path.parent / base, base_of=path))
    return merge(merged, content)


def _flat_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        keys.append(name)
        if isinstance(value, dict) and name not in FREE_FORM:
            keys.extend(_flat_keys(value, name + "."))
    return keys


def check_keys(config: dict, defaults: dict, source: str, prefix: str = "") -> None:
    """Raises ValueError naming the first key of `config` absent from `defaults`, with the closest valid key."""
    for key, value in config.items():
        name = f"{prefix}{key}"
        if key not in defaults and name in RENAMED_KEYS:
            raise UserError(f"config key '{name}' in {source} is now '{RENAMED_KEYS[name]}'; rename it")
        if key not in defaults:
            other = other_kind(name, defaults, prefix)
            if other:
                raise UserError(f"config key '{name}' in {source} belongs to {other} configs: this looks like a "
                                f"{other} config; give it to {KIND_TOOLS[other]}")
            valid = _flat_keys(defaults, prefix)
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
            hint = (f"; did you mean '{close[0]}'?" if close
                    else f"; valid keys under '{prefix or '.'}': {list(defaults)}")
            raise UserError(f"unknown config key '{name}' in {source}{hint}")
        if isinstance(value, dict) and isinstance(defaults[key], dict) and name not in FREE_FORM:
            check_keys(value, defaults[key], source, name + ".")


def other_kind(name: str, defaults: dict, prefix: str) -> str | None:
    """The kind of config ("detection", "classification") that has key `name` when `defaults` (the schema under
    `prefix`) does not, or None."""
    for kind, schema in SCHEMAS.items():
        section = schema
        for part in prefix.rstrip(".").split(".") if prefix else []:
            section = section.get(part, {}) if isinstance(section, dict) else {}
        if section is not defaults and name.rsplit(".", 1)[-1] in section:
            return kind
    return None


def parse_override(text: str) -> dict:
    """Turns `a.b.c=value` into {"a": {"b": {"c": value}}}, the value parsed as YAML (numbers, lists, null...)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UserError(f"override {text!r} must look like key=value, e.g. solver.lr=0.01")
    value = parse_yaml(raw) if raw.strip() else None
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def load_config(defaults: dict, path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """The defaults, updated by the YAML file at `path`, then by `key=value` overrides; every key checked."""
    config = copy.deepcopy(defaults)
    if path is not None:
        from_file = read_yaml(path)
        check_keys(from_file, defaults, str(path))
        config = merge(config, from_file)
    for text in overrides or []:
        override = parse_override(text)
        check_keys(override, defaults, f"override {text!r}")
        config = merge(config, override)
    return config


def format_config(config: dict) -> str:
    """The config as YAML, in the order of its keys."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
