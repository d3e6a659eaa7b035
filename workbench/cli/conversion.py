"""The command line of convert_dataset.py: each format's options to its converter's, then
`workbench.data.converters.convert`, then the summary printed."""
import argparse

from workbench.data import converters
from workbench.data.converters.coco_instances import read_class_names
from workbench.errors import UserError


def class_id_pair(text: str) -> tuple[int, str]:
    """One ID=NAME pair of --class-ids (an argparse type)."""
    key, _, name = text.partition("=")
    if not (key.isdigit() and name):
        raise argparse.ArgumentTypeError(f"expected ID=NAME (e.g. 24=person), got {text!r}")
    return int(key), name


def converter_options(args: argparse.Namespace) -> dict:
    """The arguments of `args.format`'s converter."""
    if args.format == "masks":
        return {"images": args.images, "masks": args.masks, "mask_pattern": args.mask_pattern,
                "class_name": args.class_name, "class_map": dict(args.class_ids) if args.class_ids else None,
                "id_divisor": args.id_divisor, "image_suffix": args.image_suffix, "polygons": args.polygons}
    classes = read_class_names(args.classes) if args.classes else None
    if args.format == "voc":
        if classes and args.discover_classes:
            raise UserError("give either --classes or --discover-classes, not both")
        return {"images": args.images, "annotations": args.annotations, "classes": classes,
                "discover": args.discover_classes, "difficult": args.difficult}
    if args.format == "yolo":
        return {"images": args.images, "labels": args.labels, "class_names": classes}
    return {"annotations": args.annotations, "images": args.images, "classes": classes}


def convert(args: argparse.Namespace) -> dict:
    """Converts and writes the dataset the arguments describe (`converters.convert`); prints and returns the
    summary."""
    summary = converters.convert(args.format, args.output, args.val_fraction, args.seed, **converter_options(args))
    print(converters.format_summary(summary))
    return summary
