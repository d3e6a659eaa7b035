"""Deprecated: the weight reading, format renaming and loading that lived here are in `backbones.weights`.

`backbones.weights.reading` reads checkpoint files, `backbones.weights.formats` (one module per format family)
detects and renames formats, `backbones.weights.loading` loads weights and reports mismatches, and
`backbones.weights.errors` holds the errors. Importing a name from this module still works for one release and emits
a DeprecationWarning that names its new module.
"""
from .old_paths import moved_names

# Every name this module held, with the module that holds it now and its name there.
_MOVED = {
    **{name: ("backbones.weights.errors", name)
       for name in ("CheckpointError", "CheckpointNotFoundError", "CheckpointMismatchError")},
    **{name: ("backbones.weights.reading", name)
       for name in ("read_checkpoint", "read_weights", "WRAPPER_KEYS", "REFUSED_GLOBAL", "_unreadable", "_read_file",
                    "_unwrap", "_as_tensors")},
    **{name: ("backbones.weights.formats", name)
       for name in ("convert_state_dict", "detect_format", "strip_shared_prefixes", "FORMATS", "SHARED_PREFIXES",
                    "FORMAT_EXAMPLES", "FORMAT_SHORTCUT_PADS")},
    "_convert": ("backbones.weights.formats", "convert_with_ignored"),
    "HEAD_PREFIXES": ("backbones.weights.formats.heads", "HEAD_PREFIXES"),
    "TORCHVISION_BACKBONE": ("backbones.weights.formats.torchvision", "TORCHVISION_BACKBONE"),
    "_is_torchvision": ("backbones.weights.formats.torchvision", "is_torchvision"),
    "_rename_torchvision": ("backbones.weights.formats.torchvision", "rename_torchvision"),
    "_is_mmpretrain": ("backbones.weights.formats.mmpretrain", "is_mmpretrain"),
    "_rename_mmpretrain": ("backbones.weights.formats.mmpretrain", "rename_mmpretrain"),
    **{name: ("backbones.weights.formats.detectron2", name)
       for name in ("rename_detectron2", "BN_EPS", "CAFFE2_HEAD_PREFIXES", "CAFFE2_CLASSIFIER", "CAFFE2_NORM_PARAMS",
                    "CAFFE2_PARAMS", "CAFFE2_BRANCHES", "CAFFE2_BLOCK", "CAFFE2_STEM_NORM", "DETECTRON2_BLOCK",
                    "DETECTRON2_STEM", "_block_key")},
    "_is_detectron2": ("backbones.weights.formats.detectron2", "is_detectron2"),
    "_is_caffe2": ("backbones.weights.formats.detectron2", "is_caffe2"),
    "_rename_caffe2": ("backbones.weights.formats.detectron2", "rename_caffe2"),
    "_add_affine_statistics": ("backbones.weights.formats.detectron2", "add_affine_statistics"),
    "_is_akamaster": ("backbones.weights.formats.akamaster", "is_akamaster"),
    "_rename_akamaster": ("backbones.weights.formats.akamaster", "rename_akamaster"),
    "TIMM_V2_BLOCK": ("backbones.weights.formats.timm_v2", "TIMM_V2_BLOCK"),
    "_is_timm_v2": ("backbones.weights.formats.timm_v2", "is_timm_v2"),
    "_rename_timm_v2": ("backbones.weights.formats.timm_v2", "rename_timm_v2"),
    **{name: ("backbones.weights.loading", name)
       for name in ("load_weights", "check_shortcut_pad", "without_batch_counters", "tensor_mismatches",
                    "note_conversions", "dtype_name", "key_groups", "resnet_layout", "mismatch_message",
                    "_mismatch_hint", "_classifier_prefixes", "_drop_classifier")},
}

__all__ = sorted(name for name in _MOVED if not name.startswith("_"))
__getattr__ = moved_names(__name__, _MOVED)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MOVED))
