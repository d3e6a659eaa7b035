"""Evaluate detections with the 12 COCO numbers (bbox and segm) and per-category AP.

Two inputs:
- a model: a config and its weights (our checkpoint, or torchvision's fasterrcnn/maskrcnn_resnet50_fpn file);
- a COCO results file and the original annotation JSON.

The command line is `tools/eval_det.py`.
"""
from pathlib import Path

from backbones.old_paths import moved_names
from workbench.config.loader import load_config
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.engine import distributed
from workbench.evaluation.coco import evaluate_coco, format_results
from workbench.evaluation.results import save_results
from workbench.tasks.detection import (
    build_datasets,
    build_model,
    check_num_classes,
    report_evaluation,
    use_detector_checkpoint,
)


def evaluate_files(gt: str, dets: str, iou_types: list[str] | None = None, backend: str | None = None,
                   output_dir: str | None = None) -> dict:
    """Scores the COCO results file `dets` against the annotation file `gt` (`iou_types` default: bbox; `backend`
    default: pycocotools); prints the table and saves it to `output_dir`/eval_results.json when given."""
    results = evaluate_coco(gt, dets, iou_types=tuple(iou_types or ("bbox",)), backend=backend or "pycocotools")
    print(format_results(results))
    if output_dir:
        save_results(results, Path(output_dir) / "eval_results.json")
    return results


def evaluate_model(config_file: str, weights: str, overrides: list[str] = (), iou_types: list[str] | None = None,
                   backend: str | None = None, output_dir: str | None = None) -> dict:
    """Runs the detector of `config_file` (with `overrides`) with `weights` (our checkpoint, or torchvision's) on the
    config's validation split, scores it (`iou_types` and `backend` replace the config's eval section when given),
    prints the table and writes results and pictures to `output_dir` (default: the weights' folder)."""
    config = load_config(DETECTION_DEFAULTS, config_file, overrides)
    use_detector_checkpoint(config, weights)
    if backend:
        config["eval"]["backend"] = backend
    if iou_types:
        config["eval"]["iou_types"] = list(iou_types)
    try:
        device = distributed.select_device(config["train"]["device"])
        _, val_set, paths = build_datasets(config)
        check_num_classes(config["model"], val_set)
        model = build_model(config, device)
        path = Path(weights)
        output_dir = Path(output_dir or (path.parent if path.is_file() else Path("output") / path.name))
        output_dir.mkdir(parents=True, exist_ok=True)
        results = report_evaluation(model, val_set, paths["val_annotations"], device, config, output_dir, draw=True)
        if distributed.is_main_process():
            print(format_results(results))
            print(f"results: {output_dir / 'eval_results.json'}; pictures: {output_dir / 'predictions.png'}")
        return results
    finally:
        distributed.cleanup()


# The command line's entry moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"evaluate": ("workbench.cli.evaluation", "evaluate_detections")})
