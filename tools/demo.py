"""The embedded default job: generate shapes, train Mask R-CNN R18-FPN on the CPU, evaluate, draw.

Runs offline in minutes on two cores and says where the pictures are. `make demo` runs it.

Examples:
    python tools/demo.py
    python tools/demo.py --output-dir output/demo solver.max_iter=100
"""
import argparse
import time
from pathlib import Path

from config import load_config
from make_shapes import make_shapes
from train_det import DEFAULTS, train

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "mask_rcnn_r18_fpn_shapes_cpu.yaml"
TARGETS = {"bbox": 0.80, "segm": 0.75}
TIME_BUDGET_MINUTES = 10


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--output-dir", default="output/demo")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value")
    return parser


def main(args: argparse.Namespace) -> dict:
    output_dir = Path(args.output_dir)
    config = load_config(DEFAULTS, args.config, list(args.overrides) + [
        f"train.output_dir={output_dir / 'train'}", f"data.root={output_dir / 'shapes'}"])
    started = time.perf_counter()
    shapes = config["data"]["shapes"]
    print(f"1/4 generating {shapes['num_train']} + {shapes['num_val']} shape images in {output_dir / 'shapes'}")
    make_shapes(output_dir / "shapes", shapes["num_train"], shapes["num_val"], shapes["seed"], size=shapes["size"],
                max_objects=shapes["max_objects"])
    print(f"2/4 training Mask R-CNN {config['model']['backbone']}-{config['model']['neck'].upper()} for "
          f"{config['solver']['max_iter']} iterations on the CPU")
    print("3/4 evaluating on the validation split (printed below)")
    results = train(config, resume=False)
    minutes = (time.perf_counter() - started) / 60
    train_dir = Path(config["train"]["output_dir"])
    print("4/4 pictures:")
    print(f"    predictions: {train_dir / 'predictions.png'}")
    print(f"    loss curve:  {train_dir / 'loss_curve.png'}")
    print(f"    metrics:     {train_dir / 'metrics.jsonl'}, results: {train_dir / 'eval_results.json'}")
    for iou_type, target in TARGETS.items():
        ap = results[iou_type]["stats"]["AP"]
        print(f"{iou_type} AP {ap:.3f} (target >= {target:.2f}): {'met' if ap >= target else 'NOT met'}")
    print(f"total time {minutes:.1f} min (target <= {TIME_BUDGET_MINUTES}): "
          f"{'met' if minutes <= TIME_BUDGET_MINUTES else 'NOT met'}")
    return results


if __name__ == "__main__":
    main(get_args_parser().parse_args())
