"""Converters from the formats of labeling tools and public datasets to COCO instances JSON: instance-id mask
folders (Penn-Fudan, Cityscapes), Pascal VOC XML, YOLO label files and LabelMe JSON.

`convert` reads and checks everything, then writes (atomically, optionally split into train and val) and returns a
summary; the command line is `tools/convert_dataset.py`.
"""
from pathlib import Path

from workbench.data.converters.coco_instances import CocoInstances, format_summary, write_instances
from workbench.data.converters.instance_masks import convert_instance_masks
from workbench.data.converters.labelme import convert_labelme
from workbench.data.converters.voc import convert_voc
from workbench.data.converters.yolo import convert_yolo
from workbench.errors import UserError

CONVERTERS = {"masks": convert_instance_masks, "voc": convert_voc, "yolo": convert_yolo, "labelme": convert_labelme}


def convert(format_name: str, output: str | Path, val_fraction: float | None = None, seed: int = 0,
            **options) -> dict:
    """Converts a dataset of format `format_name` (a key of CONVERTERS; `options` are its converter's arguments)
    and writes it to `output` (see `write_instances`).

    Returns:
        The summary: `files` written, `images`, `empty_images`, `instances` per category, `crowd`, and `notes`
        (what was skipped or changed, counted).
    """
    if format_name not in CONVERTERS:
        raise UserError(f"unknown dataset format {format_name!r}; expected one of {', '.join(CONVERTERS)}")
    instances = CONVERTERS[format_name](**options)
    files = write_instances(instances, output, val_fraction, seed)
    return {"files": files, **instances.summary()}


__all__ = ["CONVERTERS", "CocoInstances", "convert", "convert_instance_masks", "convert_labelme", "convert_voc",
           "convert_yolo", "format_summary", "write_instances"]
