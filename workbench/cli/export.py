"""The command line of export.py: the one model its flags name, exported and verified."""
import argparse
import re

from workbench.errors import UserError
from workbench.export.dependencies import require_onnx_extra
from workbench.export.pipeline import ExportResult, export_and_verify
from workbench.export.subjects import (
    ExportSubject,
    backbone_subject,
    classifier_checkpoint_subject,
    detector_subject,
)

OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")  # a config override (model.options.min_size=64)


def subject_of(args: argparse.Namespace) -> ExportSubject:
    """The subject the flags name: `--checkpoint` (a classifier), `--config` with `--weights` (a detector), or
    `--backbone` (features-only with `--features-only`, else a classifier)."""
    given = [flag for flag, value in (("--checkpoint", args.checkpoint), ("--config", args.config),
                                      ("--backbone", args.backbone)) if value]
    if len(given) != 1:
        raise UserError("give one of --checkpoint (a train_cls.py checkpoint), --config with --weights (a detector) "
                        f"or --backbone (a registered name); got {', '.join(given) or 'none'}")
    if (args.features_only or args.out_indices or args.num_classes) and not args.backbone:
        raise UserError("--features-only, --out-indices and --num-classes go with --backbone")
    for flag, values in (("--class-names", args.class_names), ("--images", args.images)):
        swallowed = [value for value in values or () if OVERRIDE.match(value)]
        if swallowed:
            raise UserError(f"{flag} got {' '.join(swallowed)}, which looks like a config override; put key=value "
                            f"overrides before {flag} (it takes every word after it)")
    if args.overrides and not args.config:
        raise UserError(f"config overrides ({' '.join(args.overrides)}) go with --config")
    if args.checkpoint:
        if args.weights:
            raise UserError("give --checkpoint alone: it holds its weights")
        return classifier_checkpoint_subject(args.checkpoint, args.class_names)
    if args.config:
        if not args.weights:
            raise UserError("--config needs --weights (a whole-detector checkpoint)")
        return detector_subject(args.config, args.weights, args.overrides, args.class_names)
    if args.features_only and args.class_names:
        raise UserError("--class-names describes a classifier or a detector, not a features-only backbone")
    return backbone_subject(args.backbone, args.weights, features_only=args.features_only,
                            out_indices=args.out_indices, num_classes=args.num_classes, class_names=args.class_names)


def export(args: argparse.Namespace) -> ExportResult:
    """The export the flags ask for; for ONNX the optional packages are checked before any model is built."""
    if args.format == "onnx":
        require_onnx_extra()
    return export_and_verify(subject_of(args), args.output, args.format, opset=args.opset, tolerance=args.tolerance,
                             images=args.images, seed=args.seed)
