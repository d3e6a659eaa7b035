"""Evaluate detections with the 12 COCO numbers (bbox and segm) and per-category AP.

Two inputs:
- a model: `--config` and `--weights` (our checkpoint, or torchvision's fasterrcnn/maskrcnn_resnet50_fpn file);
- a COCO results file: `--gt` (the original annotation JSON) and `--dets`.

Examples:
    python tools/eval_det.py --config configs/mask_rcnn_r18_fpn_shapes_cpu.yaml --weights output/shapes/model_final.pth
    python tools/eval_det.py --gt instances_val2017.json --dets detections.json --iou-types bbox segm
    python tools/eval_det.py --gt instances_val2017.json --dets detections.json --backend faster
    torchrun --nproc_per_node 2 tools/eval_det.py --config configs/mask_rcnn_r50_fpn_1x_coco.yaml --weights m.pth
"""
import argparse
from pathlib import Path

import distributed
from coco_eval import evaluate_coco, format_results, save_results
from train_det import build_datasets, build_model, report_evaluation, resolve_config


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config of the model and its validation data")
    parser.add_argument("--weights", help="whole-detector checkpoint to evaluate (with --config)")
    parser.add_argument("--output-dir", help="where results and pictures go (default: the weights' folder)")
    parser.add_argument("--gt", help="COCO annotation JSON (with --dets)")
    parser.add_argument("--dets", help="COCO results JSON (with --gt)")
    parser.add_argument("--iou-types", nargs="+", choices=["bbox", "segm"], help="default: what the model predicts")
    parser.add_argument("--backend", choices=["pycocotools", "faster"], help="default: eval.backend, or pycocotools")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value")
    return parser


def evaluate_files(args: argparse.Namespace) -> dict:
    """Scores a COCO results file against the annotation file."""
    results = evaluate_coco(args.gt, args.dets, iou_types=tuple(args.iou_types or ("bbox",)),
                            backend=args.backend or "pycocotools")
    print(format_results(results))
    if args.output_dir:
        save_results(results, Path(args.output_dir) / "eval_results.json")
    return results


def evaluate_model(args: argparse.Namespace) -> dict:
    """Runs the model of `--config` with `--weights` on the config's validation split and scores it."""
    overrides = list(args.overrides) + [f"model.weights={args.weights}", "model.backbone_weights=null"]
    if args.backend:
        overrides.append(f"eval.backend={args.backend}")
    if args.iou_types:
        overrides.append(f"eval.iou_types=[{','.join(args.iou_types)}]")
    config = resolve_config(argparse.Namespace(config=args.config, overrides=overrides, output_dir=None))
    device = distributed.select_device(config["train"]["device"])
    _, val_set, paths = build_datasets(config)
    model = build_model(config, device)
    output_dir = Path(args.output_dir or Path(args.weights).parent)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = report_evaluation(model, val_set, paths["val_annotations"], device, config, output_dir, draw=True)
    if distributed.is_main_process():
        print(format_results(results))
        print(f"results: {output_dir / 'eval_results.json'}; pictures: {output_dir / 'predictions.png'}")
    return results


def main(args: argparse.Namespace) -> dict:
    if args.gt or args.dets:
        if not (args.gt and args.dets):
            raise SystemExit("--gt and --dets go together")
        return evaluate_files(args)
    if not (args.config and args.weights):
        raise SystemExit("give --config and --weights (evaluate a model) or --gt and --dets (evaluate a results file)")
    try:
        return evaluate_model(args)
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    main(get_args_parser().parse_args())
