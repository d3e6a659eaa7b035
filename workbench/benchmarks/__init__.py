"""Speed of ours against the peer library, side by side in one process: backbones, a detector's training step, COCO
evaluation; and the memory of loading a large annotation file. The command line is `tools/benchmark.py`.

Every case starts with the machine line (`timing.machine_line`), prints a table of times and the ratio peer/ours,
and writes `<case>.json` and `<case>.md` to `--output-dir`; `timing` holds what they share.
"""
import argparse

from workbench.benchmarks import annotation_memory, backbone, coco_eval, detector, detector_inference, timing


def run_benchmark(args: argparse.Namespace) -> list[dict]:
    """Runs the case `args.command` names and prints its table; returns its rows."""
    if args.command == "detector":
        lines = [timing.machine_line(), "workload: one training step on a batch of shapes; speedup = the first "
                 "row's seconds / the row's"]
        print(*lines, sep="\n", flush=True)
        rows = detector.benchmark_detector(args)
        detector.print_detector_table(rows)
        timing.write_report(rows, args.output_dir, "detector", lines=lines, options=vars(args))
    elif args.command == "coco-eval":
        rows = coco_eval.benchmark_coco_eval(args)
        coco_eval.print_coco_eval_table(rows)
    elif args.command == "detector-inference":
        rows = detector_inference.benchmark_detector_inference(args)
    elif args.command == "annotation-memory":
        rows = annotation_memory.benchmark_annotation_memory(args)
        annotation_memory.print_annotation_memory_table(rows)
    else:
        rows = backbone.benchmark_backbone(args)
        backbone.print_table(rows)
    return rows
