"""The embedded default job: generate shapes, train Mask R-CNN R18-FPN on the CPU, evaluate, draw.

Runs offline in minutes on two cores and says where the pictures are. `make demo` runs it.

The command line is `tools/demo.py`.
"""
import time
from pathlib import Path

from torch import nn

from workbench.config.loader import load_config
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.data.shapes import make_shapes
from workbench.engine import trainer
from workbench.tasks.detection import DetectionTask


class DemoTask(DetectionTask):
    """The demo's detection task: says when the final evaluation starts, so that the steps print in order."""

    def evaluate(self, model: nn.Module, val_set, device, output_dir: Path, final: bool) -> dict:
        if final:
            print("3/4 evaluating on the validation split")
        return super().evaluate(model, val_set, device, output_dir, final)


def run_demo(config_file: str, output_dir: str | Path, overrides: list[str] = ()) -> dict:
    """Generates the shapes under `output_dir`, trains and evaluates the detector of `config_file` (with
    `overrides`) there, and says where the pictures are."""
    output_dir = Path(output_dir)
    config = load_config(DETECTION_DEFAULTS, config_file, overrides)
    config["train"]["output_dir"], config["data"]["root"] = str(output_dir / "train"), str(output_dir / "shapes")
    started = time.perf_counter()
    shapes = config["data"]["shapes"]
    print(f"1/4 generating {shapes['num_train']} + {shapes['num_val']} shape images in {output_dir / 'shapes'}")
    make_shapes(output_dir / "shapes", shapes["num_train"], shapes["num_val"], shapes["seed"], size=shapes["size"],
                max_objects=shapes["max_objects"])
    print(f"2/4 training Mask R-CNN {config['model']['backbone']}-{config['model']['neck'].upper()} for "
          f"{config['solver']['max_iter']} iterations on the CPU")
    results = trainer.train(DemoTask(config))
    train_dir = Path(config["train"]["output_dir"])
    print("4/4 pictures:")
    print(f"    predictions: {train_dir / 'predictions.png'}")
    print(f"    loss curve:  {train_dir / 'loss_curve.png'}")
    print(f"    metrics:     {train_dir / 'metrics.jsonl'}, results: {train_dir / 'eval_results.json'}")
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min")
    print(f"next, on your own images: python tools/predict.py --weights {train_dir / 'model_final.pth'} "
          f"--input {output_dir / 'shapes' / 'val'} --output-dir {output_dir / 'predict'}")
    return results
