"""Speed of ours against the peer library, side by side in one process: backbones, a detector's training step, COCO
evaluation; and the memory of loading a large annotation file. The command line is `tools/benchmark.py`."""
import argparse

from workbench.benchmarks import annotation_memory, backbone, coco_eval, detector


def run_benchmark(args: argparse.Namespace) -> list[dict]:
    """Runs the case `args.command` names and prints its table; returns its rows."""
    if args.command == "detector":
        rows = detector.benchmark_detector(args)
        detector.print_detector_table(rows)
    elif args.command == "coco-eval":
        rows = coco_eval.benchmark_coco_eval(args)
        coco_eval.print_coco_eval_table(rows)
    elif args.command == "annotation-memory":
        rows = annotation_memory.benchmark_annotation_memory(args)
        annotation_memory.print_annotation_memory_table(rows)
    else:
        rows = backbone.benchmark_backbone(args)
        backbone.print_table(rows)
    return rows
