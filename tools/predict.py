"""Run a trained detector or classifier on your own images.

A detector writes `predictions.json` (COCO results: image_id, file_name, category_id, category_name, bbox, score,
and RLE masks for Mask R-CNN) and one picture per image with its boxes, masks and class names. A classifier writes
the top-5 classes of each image. Image ids count the input files from 1, in sorted order.

The model:
- `--config` and `--weights`: a detection config with our checkpoint or torchvision's COCO checkpoint (its labels are
  COCO category ids: add model.labels_are_category_ids=true and model.num_classes=91), or a classification config
  with weights of any format;
- `--weights` alone: a train_det.py or train_cls.py checkpoint (its config is inside);
- `--onnx`: a detector exported by tools/export.py, run by onnxruntime.

Examples:
    python tools/predict.py --config configs/mask_rcnn_r18_fpn_shapes_cpu.yaml --weights output/shapes/model_final.pth \
        --input output/shapes/val --output-dir output/predict
    python tools/predict.py --config configs/mask_rcnn_r50_fpn_1x_coco.yaml \
        --weights maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth --input "photos/*.jpg" --output-dir out \
        model.labels_are_category_ids=true model.num_classes=91
    python tools/predict.py --weights output/shapes_cls/model_final.pth --input my_pictures/ --output-dir out
    python tools/predict.py --onnx mask_rcnn.onnx --input photos/ --output-dir out --score-thresh 0.3
"""
import argparse

from workbench import cli
from workbench.cli import prediction


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="detection or classification config of the model")
    parser.add_argument("--weights", help="checkpoint: with --config any weights; alone a train_det/train_cls one")
    parser.add_argument("--onnx", help="a detector exported by tools/export.py, instead of --config/--weights")
    parser.add_argument("--input", required=True, help="an image file, a folder of images, or a glob pattern")
    parser.add_argument("--output-dir", required=True, help="where predictions.json and the pictures go")
    parser.add_argument("--score-thresh", type=float, default=0.5, help="detections scoring less are left out")
    parser.add_argument("--batch-size", type=int, default=2, help="images per forward pass")
    parser.add_argument("--workers", type=int, default=0, help="processes reading images")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's train.device)")
    parser.add_argument("overrides", nargs="*", help="config overrides as key=value")
    return parser


def main(args: argparse.Namespace):
    return prediction.predict(args)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
