r"""Export a backbone, a classifier or a Faster / Mask R-CNN to ONNX or TorchScript, verified before it is written.

What to export (one of):
- `--backbone NAME --features-only [--out-indices ...] [--weights FILE]`: a features-only backbone (a list of maps);
- `--checkpoint CKPT`: a train_cls.py classifier; `--backbone NAME [--weights FILE] [--num-classes N]`: a registered
  classifier with weights of any format backbones.load_weights reads;
- `--config CONFIG --weights CKPT [key=value ...]`: the detector of a train_det.py config, as tools/eval_det.py
  builds it; it takes one RGB image [3, H, W] in 0-1 and returns boxes, labels, scores (and masks). Put key=value
  overrides before --class-names and --images, which take every word after them.

The exported file is run on the same images as the PyTorch model (`--images`, or seeded random images of two sizes);
the worst difference of every output is printed, and the export fails (exit code 2, nothing written at --output)
when one exceeds the tolerance. ONNX needs the optional packages: pip install -e ".[export]". ONNX files carry their
description (kind, inputs, outputs, class names) as JSON under the metadata key "workbench"; run them with
`workbench.export.OnnxDetector` / `OnnxClassifier`.

Examples:
    python tools/export.py --config configs/mask_rcnn_r18_fpn_shapes_cpu.yaml \
        --weights output/shapes_r18_fpn/model_final.pth --output mask_rcnn.onnx model.options.box_score_thresh=0.3 \
        --images a.jpg b.jpg
    python tools/export.py --config configs/faster_rcnn_r50_fpn_1x_coco.yaml --weights frcnn.pth \
        --format torchscript --output frcnn.pt --class-names data/coco/annotations/instances_val2017.json
    python tools/export.py --checkpoint output/shapes_cls/model_final.pth --output classifier.onnx \
        --class-names circle square triangle
    python tools/export.py --backbone resnet50 --weights resnet50-0676ba61.pth --output resnet50.onnx
    python tools/export.py --backbone resnet50 --features-only --out-indices 1 2 3 4 --weights R-50.pkl \
        --output r50_c2_c5.pt --format torchscript
"""
import argparse

from workbench import cli
from workbench.cli import export
from workbench.export.onnx_export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from workbench.export.pipeline import FORMATS


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="file to write (.onnx; .pt for TorchScript)")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="default: onnx")
    parser.add_argument("--checkpoint", help="a train_cls.py checkpoint (a classifier)")
    parser.add_argument("--config", help="a train_det.py config (a detector, with --weights)")
    parser.add_argument("--backbone", help="a registered backbone name (a classifier, or maps with --features-only)")
    parser.add_argument("--weights", help="whole-detector checkpoint (with --config) or backbone weights of any "
                                          "supported format (with --backbone; default: random)")
    parser.add_argument("--features-only", action="store_true", help="export the backbone's maps (timm's "
                                                                     "features_only)")
    parser.add_argument("--out-indices", type=int, nargs="+", help="maps of --features-only (default: all)")
    parser.add_argument("--num-classes", type=int, help="classifier outputs with --backbone (default: the name's)")
    parser.add_argument("--class-names", nargs="+", help="names by label, or one file: COCO annotations .json, a "
                                                         "JSON list, or .txt with one name per line (detectors: "
                                                         "default, the config's validation annotations)")
    parser.add_argument("--images", nargs="+", help="image files to verify on (default: random images)")
    parser.add_argument("--tolerance", type=float, help="largest difference allowed, relative to each output's "
                                                        "largest magnitude (absolute below 1); default: 1e-4 for "
                                                        "backbones and classifiers, 1e-3 for detectors (mask "
                                                        "probabilities: 10 times the tolerance)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default: {DEFAULT_OPSET})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random verification images")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value (with --config)")
    return parser


def main(args: argparse.Namespace):
    return export.export(args)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
