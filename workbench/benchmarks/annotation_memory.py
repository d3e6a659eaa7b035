"""Peak resident memory and time of loading a COCO-sized annotation file: pycocotools' `COCO(path)` against our
readers (the checked reader, the evaluation's ground truth, the training dataset), each in a fresh interpreter so
that its peak is its own.

The file is synthetic with COCO train2017's proportions: 7.3 objects per image, polygons of about 25 points, 1% crowd
regions as uncompressed RLEs, and images and categories with COCO's fields.
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from tqdm import tqdm

from backbones.old_paths import moved_names

REFERENCE = "pycocotools COCO(path)"
OBJECTS_PER_IMAGE = 7.3
CROWD_FRACTION = 0.01
CATEGORIES = 80
MIB = 2 ** 20


def pycocotools_loader() -> Callable:
    from pycocotools.coco import COCO
    return COCO


def checked_loader() -> Callable:
    from workbench.data.coco_files import read_annotation_file
    return read_annotation_file


def evaluation_loader() -> Callable:
    """What `evaluate_coco` builds and holds while it scores: the checked file as a pycocotools COCO object."""
    from workbench.evaluation.coco import evaluate_coco
    return lambda path: evaluate_coco(path, [], ("bbox", "segm"))


def dataset_loader() -> Callable:
    from workbench.data.coco import CocoDetection
    return lambda path: CocoDetection(Path(path).parent, path)


# Each returns its loader of a path, importing what it needs first, so that a child's memory before loading holds
# only those imports.
LOADERS = {
    REFERENCE: pycocotools_loader,
    "read_annotation_file(path)": checked_loader,
    "evaluate_coco(path, [])": evaluation_loader,
    "CocoDetection(image_dir, path)": dataset_loader,
}


def machine() -> str:
    """The shared machine line (`timing.machine_line`) with the memory and versions: a benchmark's first line."""
    from workbench.benchmarks.timing import machine_line  # here: the children measured must not import torch

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return (f"{machine_line()}; {memory:.0f} GiB; Python {platform.python_version()}, "
            f"pycocotools {version('pycocotools')}")


def polygon(rng: np.random.Generator, box: np.ndarray) -> list[float]:
    """A jagged closed outline inside the xywh box, 8 to 40 points, coordinates to 2 decimals as in COCO."""
    x, y, w, h = box
    angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(8, 41)))
    radii = rng.uniform(0.6, 1.0, (len(angles), 1))
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii
    return np.round(np.array([x + w / 2, y + h / 2]) + points * [w / 2, h / 2], 2).ravel().tolist()


def shoelace(coordinates: list[float]) -> float:
    xs, ys = np.array(coordinates[0::2]), np.array(coordinates[1::2])
    return float(abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))) / 2)


def box_rle(box: np.ndarray, height: int, width: int) -> dict:
    """The uncompressed (column-major) RLE of a box, as COCO stores crowd regions."""
    x, y, w, h = (int(v) for v in box)
    w, h = max(w, 1), max(h, 1)
    counts = [x * height + y] + [h, height - h] * (w - 1) + [h, height * width - (x + w - 1) * height - y - h]
    return {"counts": counts, "size": [height, width]}


def synthetic_image(rng: np.random.Generator, image_id: int) -> tuple[dict, list[dict]]:
    """One image entry with COCO's fields and its annotations (without ids); object sides are log-uniform from 4 px
    to 70% of the image, so that most objects are small, as in COCO."""
    height, width = (480, 640) if rng.random() < 0.7 else (640, 480)
    image = {"license": int(rng.integers(1, 9)), "file_name": f"{image_id:012d}.jpg",
             "coco_url": f"http://images.cocodataset.org/train2017/{image_id:012d}.jpg", "height": height,
             "width": width, "date_captured": "2013-11-14 11:18:45",
             "flickr_url": f"http://farm4.staticflickr.com/{image_id % 9000}/{image_id}_4e622c8349_z.jpg",
             "id": image_id}
    wh = np.exp(rng.uniform(np.log(4), np.log([0.7 * width, 0.7 * height]), (rng.poisson(OBJECTS_PER_IMAGE), 2)))
    boxes = np.round(np.concatenate([rng.uniform(0, [width, height] - wh), wh], axis=1), 2)
    annotations = []
    for box in boxes:
        crowd = rng.random() < CROWD_FRACTION
        segmentation = box_rle(box, height, width) if crowd else [polygon(rng, box)]
        area = float(box[2] * box[3]) if crowd else shoelace(segmentation[0])
        annotations.append({"segmentation": segmentation, "area": round(area, 4), "iscrowd": int(crowd),
                            "image_id": image_id, "bbox": box.tolist(),
                            "category_id": int(rng.integers(1, CATEGORIES + 1))})
    return image, annotations


def write_annotation_file(path: Path, size_mb: float, seed: int) -> dict:
    """Streams a synthetic instances file of about `size_mb` MiB to `path` (annotations first, then the images);
    returns its size and counts."""
    rng = np.random.default_rng(seed)
    categories = [{"supercategory": f"group{(c - 1) // 8}", "id": c, "name": f"category{c}"}
                  for c in range(1, CATEGORIES + 1)]
    images, annotation_id, written = [], 0, 0
    with path.open("w") as file:
        written += file.write('{"info": {"description": "synthetic COCO", "version": "1.0", "year": 2017}, '
                              f'"licenses": [], "categories": {json.dumps(categories)}, "annotations": [')
        while written < size_mb * MIB:
            image, annotations = synthetic_image(rng, len(images) + 1)
            images.append(image)
            written += len(json.dumps(image)) + 2
            for annotation in annotations:
                annotation_id += 1
                annotation["id"] = annotation_id
                written += file.write(("," if annotation_id > 1 else "") + json.dumps(annotation))
        file.write(f'], "images": {json.dumps(images)}}}')
    return {"size_mib": path.stat().st_size / MIB, "images": len(images), "annotations": annotation_id,
            "categories": CATEGORIES}


def resident_mib(field: str = "VmRSS") -> float:
    """This process's resident memory now (`VmRSS`) or at its peak (`VmHWM`, which unlike `ru_maxrss` does not
    carry over the parent's peak through fork and exec)."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024


def measure(loader: str, path: str) -> dict:
    """Loads `path` once with `LOADERS[loader]` in this process: its peak resident memory, what loading added to
    the memory before it (at the peak, and still held while the result lives) and seconds."""
    load = LOADERS[loader]()
    before = resident_mib()
    start = time.perf_counter()
    loaded = load(path)
    seconds = time.perf_counter() - start
    held = resident_mib() - before
    del loaded
    peak = resident_mib("VmHWM")
    return {"reader": loader, "peak_mib": peak, "added_mib": peak - before, "held_mib": held, "seconds": seconds}


def measure_in_child(loader: str, path: Path) -> dict:
    """`measure` in a fresh interpreter (`-P`: nothing of this folder on its path), so that the peak is the
    loader's own."""
    child = subprocess.run([sys.executable, "-P", __file__, loader, str(path)], capture_output=True, text=True,
                           check=True)
    return json.loads(child.stdout.splitlines()[-1])


@dataclass
class MemorySettings:
    """The `annotation-memory` case's file.

    Attributes:
        size_mb: size of the synthetic COCO instances file in MiB.
        seed: seed of the file.
        output_dir: where annotation-memory.json and .md go.
    """

    size_mb: float = 200
    seed: int = 0
    output_dir: str = "output/benchmarks"


def benchmark_annotation_memory(settings: MemorySettings) -> list[dict]:
    """Prints the machine, writes the synthetic file, measures each loader on it in its own process, and saves the
    rows as JSON and markdown in `settings.output_dir`."""
    lines = [machine()]
    print(lines[0])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "instances_synthetic.json"
        counts = write_annotation_file(path, settings.size_mb, settings.seed)
        lines.append(f"file: {counts['size_mib']:.0f} MiB, {counts['images']:,} images, {counts['annotations']:,} "
                     f"annotations, {counts['categories']} categories")
        print(lines[1])
        rows = [measure_in_child(loader, path) for loader in tqdm(LOADERS, desc="loaders, one process each")]
    for row in rows:
        row["added_ratio"] = row["added_mib"] / rows[0]["added_mib"]
        row["seconds_ratio"] = row["seconds"] / rows[0]["seconds"]
    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "annotation-memory.json").write_text(json.dumps({"machine": lines[0], "file": counts,
                                                                   "rows": rows}, indent=1))
    (output_dir / "annotation-memory.md").write_text("\n\n".join(lines + [table(rows, markdown=True)]) + "\n")
    return rows


HEADER = ("reader", "peak MiB", "added MiB", "held MiB", "seconds", "added vs pycocotools", "time vs pycocotools")


def table(rows: list[dict], markdown: bool = False) -> str:
    """The rows as an aligned plain table or a markdown one."""
    cells = [[row["reader"], f"{row['peak_mib']:.0f}", f"{row['added_mib']:.0f}", f"{row['held_mib']:.0f}",
              f"{row['seconds']:.1f}", f"{row['added_ratio']:.2f}x", f"{row['seconds_ratio']:.2f}x"] for row in rows]
    if markdown:
        return "\n".join([f"| {' | '.join(HEADER)} |", "|---" * len(HEADER) + "|"]
                         + [f"| {' | '.join(row)} |" for row in cells])
    widths = [max(len(row[i]) for row in [HEADER, *cells]) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.rjust(width) if i else cell.ljust(width)
                               for i, (cell, width) in enumerate(zip(row, widths))) for row in [HEADER, *cells])


def print_annotation_memory_table(rows: list[dict]) -> None:
    print("added: peak resident memory minus that before loading (after imports); held: still resident while the "
          "result lives")
    print(table(rows))


if __name__ == "__main__":
    print(json.dumps(measure(*sys.argv[1:])))


# The command line's options moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"add_arguments": ("workbench.cli.benchmark", "annotation_memory_arguments")})
