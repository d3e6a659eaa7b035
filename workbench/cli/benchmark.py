"""The command line of benchmark.py: one subcommand per case, its options (defaults: the case's settings), and the
parsed options turned into the case's settings."""
import argparse
from dataclasses import fields

from workbench.benchmarks import (
    CASES,
    annotation_memory,
    backbone,
    coco_eval,
    data_pipeline,
    demo_time,
    detector_inference,
    detector_train,
    roi_align,
)
from workbench.evaluation import coco


def backbone_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = backbone.BackboneSettings
    parser.add_argument("--model", nargs="+", default=list(defaults.model), choices=backbone.MODELS)
    parser.add_argument("--mode", nargs="+", default=list(defaults.mode), choices=backbone.MODES,
                        help="eval: forward under inference_mode; train: forward + backward, frozen_stages=1")
    parser.add_argument("--batch", nargs="+", type=int, default=list(defaults.batch))
    parser.add_argument("--size", type=int, default=defaults.size, help="input height and width")
    parser.add_argument("--repeats", type=int, default=defaults.repeats,
                        help="timed rounds of resnet50 at batch 1; divided by batch x depth / 50, at least 5")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--device", default=defaults.device, choices=["cpu", "cuda"],
                        help="cuda: channels_last, fp16 autocast, cudnn.benchmark, for every model")
    parser.add_argument("--compile", action="store_true", help="also time ours under torch.compile (compile time "
                        "reported)")
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where backbone.json and .md go")


def detector_inference_arguments(parser: argparse.ArgumentParser) -> None:
    defaults, kinds = detector_inference.InferenceSettings, list(detector_inference.TORCHVISION_BUILDERS)
    parser.add_argument("--kinds", nargs="+", default=list(defaults.kinds), choices=kinds)
    parser.add_argument("--images", type=int, default=defaults.images, help="images per call")
    parser.add_argument("--height", type=int, default=defaults.height, help="image height (the detector's min_size)")
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--detections", type=int, default=defaults.detections, help="detections kept per image")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="timed calls per model")
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where detector-inference.json and .md go")


def detector_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = detector_train.TrainSettings
    parser.add_argument("--models", nargs="+", default=list(defaults.models), choices=detector_train.MODELS)
    parser.add_argument("--images", "--batch", type=int, default=defaults.images, help="images per training step")
    parser.add_argument("--height", type=int, default=defaults.height, help="r50-fpn image height (the detector's "
                        "min_size); 800 with --width 1088 is COCO-sized")
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--config", default=defaults.config, help="the config of our demo detector")
    parser.add_argument("--device", default=defaults.device, choices=["cpu", "cuda"],
                        help="cuda: fp16 autocast + GradScaler, channels_last, cudnn.benchmark")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=defaults.warmup,
                        help="untimed steps per model after the compared one")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where detector-train.json and .md go")


def coco_eval_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = coco_eval.CocoEvalSettings
    parser.add_argument("--images", type=int, default=defaults.images)
    parser.add_argument("--categories", type=int, default=defaults.categories)
    parser.add_argument("--gts-per-image", type=int, default=defaults.gts_per_image,
                        help="mean ground-truth objects per image")
    parser.add_argument("--dets-per-image", type=int, default=defaults.dets_per_image)
    parser.add_argument("--size", type=int, default=defaults.size, help="image height and width")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--backend", default=defaults.backend, choices=coco.BACKENDS, help="our engine")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="timed rounds; the median is shown")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed rounds first")
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where coco-eval.json and .md go")


def data_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = data_pipeline.DataSettings
    parser.add_argument("--images", type=int, default=defaults.images, help="generated training images per size")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(defaults.sizes),
                        help="image sides in pixels (square shapes images); 640 is COCO-sized")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help="also time a DataLoader with this many workers")
    parser.add_argument("--repeats", type=int, default=defaults.repeats,
                        help="timed passes over the images per pipeline")
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where data.json and .md go")


def roi_align_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = roi_align.RoiAlignSettings
    parser.add_argument("--cases", nargs="+", default=list(defaults.cases), choices=list(roi_align.CASES))
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="timed calls per pooler")
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where roi-align.json and .md go")


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = demo_time.DemoSettings
    parser.add_argument("--config", default=defaults.config, help="the demo's config, for both models")
    parser.add_argument("--models", nargs="+", default=list(defaults.models), choices=demo_time.MODELS)
    parser.add_argument("--eval-period", type=int, default=defaults.eval_period,
                        help="iterations between evaluations")
    parser.add_argument("--box-ap", type=float, default=defaults.box_ap, help="the box AP to reach")
    parser.add_argument("--mask-ap", type=float, default=defaults.mask_ap, help="the mask AP to reach")
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where demo.json and .md go; the runs go "
                        "to its demo/ folder")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value, for both models")


def annotation_memory_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = annotation_memory.MemorySettings
    parser.add_argument("--size-mb", type=float, default=defaults.size_mb,
                        help="size of the synthetic COCO instances file in MiB")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where annotation-memory.json and .md go")


ARGUMENTS = {"backbone": backbone_arguments, "detector-inference": detector_inference_arguments,
             "detector-train": detector_train_arguments, "coco-eval": coco_eval_arguments, "data": data_arguments,
             "roi-align": roi_align_arguments, "demo": demo_arguments,
             "annotation-memory": annotation_memory_arguments}


def add_cases(commands: argparse._SubParsersAction) -> None:
    """One subcommand per case of `workbench.benchmarks.CASES`, with its options."""
    for name, (help_text, _, _) in CASES.items():
        ARGUMENTS[name](commands.add_parser(name, help=help_text))


def run_benchmark(args: argparse.Namespace) -> list[dict]:
    """Runs the case `args.command` names with the settings its options give; returns its rows."""
    _, settings, run = CASES[args.command]
    return run(settings(**{field.name: getattr(args, field.name) for field in fields(settings)}))
