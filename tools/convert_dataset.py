"""Convert a dataset from a labeling tool's or a public set's format to COCO instances JSON.

Formats (subcommands): masks (instance-id PNG folders), voc (Pascal VOC XML), yolo (YOLO .txt labels, boxes or
polygons), labelme (LabelMe JSON). Everything is read and checked before anything is written; bad input is one line
naming the file (and line or id) and exit code 2. `--val-fraction` writes a seeded train/val split:
OUTPUT/instances_train.json and OUTPUT/instances_val.json; without it OUTPUT (a .json file) or OUTPUT/instances.json.

Examples:
    python tools/convert_dataset.py masks --images PennFudanPed/PNGImages --masks PennFudanPed/PedMasks \
        --mask-pattern '{stem}_mask.png' --class-name person --val-fraction 0.3 --seed 0 \
        --output data/pennfudan/annotations
    python tools/convert_dataset.py masks --images leftImg8bit/val --masks gtFine/val --image-suffix _leftImg8bit \
        --mask-pattern '{stem}_gtFine_instanceIds.png' --class-ids 24=person 25=rider 26=car 27=truck 28=bus \
        29=caravan 30=trailer 31=train 32=motorcycle 33=bicycle --output data/cityscapes/instances_val.json
    python tools/convert_dataset.py voc --images VOC2012/JPEGImages --annotations VOC2012/Annotations \
        --difficult crowd --val-fraction 0.2 --seed 0 --output data/voc/annotations
    python tools/convert_dataset.py yolo --images dataset/images/train --labels dataset/labels/train \
        --classes dataset/data.yaml --output data/mine/instances_train.json
    python tools/convert_dataset.py labelme --annotations labelled/ --output data/labelled/instances.json
"""
import argparse

from workbench import cli
from workbench.cli import conversion
from workbench.data.converters.voc import DIFFICULT_CHOICES


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    formats = parser.add_subparsers(dest="format", required=True)
    masks = formats.add_parser("masks", help="one integer-id PNG per image (Penn-Fudan, Cityscapes)")
    masks.add_argument("--masks", required=True, help="mask folder, subfolders as under --images")
    masks.add_argument("--mask-pattern", default="{stem}.png", help="a mask's name; {stem} is its image's "
                                                                    "(default: {stem}.png)")
    masks.add_argument("--image-suffix", default="", help="end of an image's stem its mask lacks (_leftImg8bit)")
    classes = masks.add_mutually_exclusive_group(required=True)
    classes.add_argument("--class-name", help="the class of every instance (every non-zero id is one instance)")
    classes.add_argument("--class-ids", nargs="+", type=conversion.class_id_pair, metavar="ID=NAME",
                         help="class ids under Cityscapes' rule: id // --id-divisor is the class, ids below it crowd")
    masks.add_argument("--id-divisor", type=int, default=1000, help="default: 1000 (Cityscapes)")
    masks.add_argument("--polygons", action="store_true", help="polygons instead of RLEs (holes get filled)")
    voc = formats.add_parser("voc", help="Pascal VOC XML files")
    voc.add_argument("--annotations", required=True, help="folder of .xml files")
    voc.add_argument("--classes", nargs="+", help="class names, or a file of them (default: VOC's 20)")
    voc.add_argument("--discover-classes", action="store_true", help="the names found in the files, sorted")
    voc.add_argument("--difficult", choices=DIFFICULT_CHOICES, default="crowd",
                     help="difficult objects as crowd (ignored by COCO eval, as by VOC's), kept, or skipped")
    yolo = formats.add_parser("yolo", help="YOLO .txt labels (boxes or polygons)")
    yolo.add_argument("--labels", required=True, help="label folder, subfolders as under --images")
    yolo.add_argument("--classes", nargs="+", required=True, help="class names, or data.yaml, or a names file")
    labelme = formats.add_parser("labelme", help="LabelMe JSON files")
    labelme.add_argument("--annotations", required=True, help="folder of LabelMe .json files")
    labelme.add_argument("--classes", nargs="+", help="class names, or a file of them (default: labels found)")
    for sub, images_required in ((masks, True), (voc, True), (yolo, True), (labelme, False)):
        sub.add_argument("--images", required=images_required,
                         help="image folder; output file names are relative to it" +
                              ("" if images_required else " (default: --annotations)"))
        sub.add_argument("--output", required=True, help="output .json file, or folder (instances*.json)")
        sub.add_argument("--val-fraction", type=float, help="write a seeded train/val split with this val share")
        sub.add_argument("--seed", type=int, default=0, help="seed of the split (default: 0)")
    return parser


def main(args: argparse.Namespace) -> dict:
    return conversion.convert(args)


if __name__ == "__main__":
    cli.run(main, get_args_parser())
