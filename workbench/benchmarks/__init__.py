"""Speed of ours against the peer library, side by side in one process: backbones, detector inference and training
steps, the detection data pipeline, COCO evaluation, the time to the demo's AP; and the memory of loading a large
annotation file. The command line is `tools/benchmark.py`.

Every case starts with the machine line (`timing.machine_line`), prints a table of times and the ratio peer/ours,
and writes `<case>.json` and `<case>.md` to `--output-dir`; `timing` holds what they share.
"""
import argparse

from workbench.benchmarks import (
    annotation_memory,
    backbone,
    coco_eval,
    data_pipeline,
    demo_time,
    detector_inference,
    detector_train,
    roi_align,
)


def run_benchmark(args: argparse.Namespace) -> list[dict]:
    """Runs the case `args.command` names and prints its table; returns its rows."""
    if args.command == "detector-train":
        rows = detector_train.benchmark_detector_train(args)
    elif args.command == "data":
        rows = data_pipeline.benchmark_data_pipeline(args)
    elif args.command == "coco-eval":
        rows = coco_eval.benchmark_coco_eval(args)
        coco_eval.print_coco_eval_table(rows)
    elif args.command == "detector-inference":
        rows = detector_inference.benchmark_detector_inference(args)
    elif args.command == "demo":
        rows = demo_time.benchmark_demo(args)
    elif args.command == "roi-align":
        rows = roi_align.benchmark_roi_align(args)
    elif args.command == "annotation-memory":
        rows = annotation_memory.benchmark_annotation_memory(args)
        annotation_memory.print_annotation_memory_table(rows)
    else:
        rows = backbone.benchmark_backbone(args)
        backbone.print_table(rows)
    return rows
