"""Drawing detections: boxes, filled semi-transparent masks, class name and score, one colour per class.

As a script, draws a COCO results file onto the images of its annotation file: one PNG per image and a grid.png.

Examples:
    python tools/visualize.py --gt output/shapes/annotations/instances_val.json \
        --dets output/shapes_r18_fpn/detections.json --images output/shapes/val \
        --output-dir output/shapes_r18_fpn/pictures
    python tools/visualize.py --gt instances_val2017.json --dets detections.json --images val2017 \
        --output-dir pictures --score-threshold 0.3 --max-images 8
"""
import argparse

from workbench import cli
from workbench.evaluation import pictures


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gt", required=True, help="COCO annotation JSON (image files and category names)")
    parser.add_argument("--dets", required=True, help="COCO results JSON")
    parser.add_argument("--images", required=True, help="folder the annotation's file_name entries are relative to")
    parser.add_argument("--output-dir", "--out", required=True, help="output folder")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--max-images", type=int, default=16, help="draw the first N images of the annotation file")
    parser.add_argument("--columns", type=int, default=4, help="images per row of grid.png")
    return parser


def main(args: argparse.Namespace):
    return pictures.draw_results_file(args.gt, args.dets, args.images, args.output_dir, args.score_threshold,
                                      args.max_images, args.columns)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
