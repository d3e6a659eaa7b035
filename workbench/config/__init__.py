"""The config loader (YAML, `_base_`, key=value overrides) and the detection and classification schemas."""
from workbench.config.loader import format_config, load_config, merge
from workbench.config.schemas import CLASSIFICATION_DEFAULTS, DETECTION_DEFAULTS, SOLVER_DEFAULTS

__all__ = ["CLASSIFICATION_DEFAULTS", "DETECTION_DEFAULTS", "SOLVER_DEFAULTS", "format_config", "load_config", "merge"]
