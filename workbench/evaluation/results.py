"""Evaluation results on disk: strict JSON, with undefined (NaN) numbers as null."""
import json
import math
from pathlib import Path


def json_ready(value):
    """`value` with every NaN (an undefined AP, say) replaced by None, through dicts and lists."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def save_results(results: dict, path: str | Path) -> Path:
    """Writes `results` (COCO's or a classifier's) as strict JSON, NaN as null; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_ready(results), indent=1))
    return path
