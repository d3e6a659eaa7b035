"""The command lines of make_shapes.py and make_shapes_cls.py: the synthetic sets written, and a line saying what."""
import argparse
from pathlib import Path

from workbench.data import shapes, shapes_classification


def make_shapes(args: argparse.Namespace) -> dict:
    """Writes the detection set the arguments describe; prints and returns its summary."""
    summary = shapes.make_shapes(args.output_dir, args.num_train, args.num_val, args.seed, size=args.size,
                                 min_objects=args.min_objects, max_objects=args.max_objects)
    images, objects = summary["num_images"], summary["num_annotations"]
    print(f"shapes: {images['train']} train images ({objects['train']} objects), {images['val']} val images "
          f"({objects['val']} objects), {args.size} px, seed {args.seed}, in {args.output_dir}")
    return summary


def make_shapes_cls(args: argparse.Namespace) -> Path:
    """Writes the classification set the arguments describe; prints what it holds and returns its root."""
    root = shapes_classification.make_shapes_cls(args.output_dir, args.num_train, args.num_val, args.seed, args.size,
                                                 args.background, tuple(args.extent))
    print(f"shapes classification: {args.num_train} train and {args.num_val} val images of "
          f"{len(shapes_classification.CLASSES)} classes, {args.size} px, {args.background} background, extent "
          f"{args.extent[0]:g}-{args.extent[1]:g}, seed {args.seed}, in {root}")
    return root
