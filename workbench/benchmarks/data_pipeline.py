"""Images per second of our detection training data pipeline against torchvision.transforms.v2's, over the same
generated shapes files (PNG).

Ours is what training builds: `CocoDetection(..., transforms=build_transforms(True))` (decode, masks from RLE,
horizontal flip p=0.5 through albumentations, tensors; it also derives `area` from the flipped masks). The peer is
torchvision's `CocoDetection` under `wrap_dataset_for_transforms_v2` (boxes as BoundingBoxes, masks as Mask) with
`v2.Compose([ToImage(), RandomHorizontalFlip(0.5), ToDtype(float32, scale=True)])`: the same float image, boxes,
labels and masks. A round reads every sample once in one process, and through a DataLoader with `--workers` workers
(persistent) when asked.

Before timing, both pipelines read every sample with the flip off and with it always on, and the largest difference
of image, boxes, labels and masks is printed.
"""
import contextlib
import io
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from backbones.old_paths import moved_names
from workbench.benchmarks.timing import alternate, machine_line, max_abs_difference, medians, table, write_report
from workbench.config.schemas import DETECTION_DEFAULTS
from workbench.data.coco import CocoDetection, collate_fn
from workbench.data.detection_transforms import build_transforms
from workbench.data.shapes import make_shapes

HFLIP_PROB = DETECTION_DEFAULTS["data"]["augment"]["hflip_prob"]
BATCH_SIZE = DETECTION_DEFAULTS["data"]["batch_size"]
COMPARED_KEYS = ("boxes", "labels", "masks")
COLUMNS = {"case": "case", "images": "images", "ours_s": "ours s/pass", "torchvision_s": "torchvision s/pass",
           "ours_images_per_s": "ours img/s", "torchvision_images_per_s": "torchvision img/s",
           "ratio": "torchvision/ours", "image_max_abs_diff": "max|diff| image",
           "boxes_max_abs_diff": "boxes", "labels_max_abs_diff": "labels", "masks_max_abs_diff": "masks"}


@dataclass
class DataSettings:
    """What the `data` case times.

    Attributes:
        images: generated training images per size.
        sizes: image sides in pixels (square shapes images); 640 is COCO-sized.
        workers: also time a DataLoader with this many workers (0: not).
        repeats: timed passes over the images per pipeline.
        warmup: untimed passes first.
        seed: seed of the images and the augmentation.
        output_dir: where data.json and .md go.
    """

    images: int = 200
    sizes: tuple[int, ...] = (128, 640)
    workers: int = 0
    repeats: int = 5
    warmup: int = 1
    seed: int = 0
    output_dir: str = "output/benchmarks"


def our_dataset(paths: dict, hflip_prob: float, seed: int) -> CocoDetection:
    """Our training dataset over the shapes files, flipping with probability `hflip_prob`."""
    transforms = build_transforms(True, hflip_prob=hflip_prob)
    transforms.set_random_seed(seed)
    return CocoDetection(paths["train_images"], paths["train_annotations"], transforms=transforms)


def torchvision_dataset(paths: dict, hflip_prob: float):
    """torchvision's CocoDetection over the same files, wrapped for transforms.v2, with the same augmentation."""
    transforms = v2.Compose([v2.ToImage(), v2.RandomHorizontalFlip(hflip_prob), v2.ToDtype(torch.float32, scale=True)])
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints while it loads
        dataset = torchvision.datasets.CocoDetection(str(paths["train_images"]), str(paths["train_annotations"]),
                                                     transforms=transforms)
    return torchvision.datasets.wrap_dataset_for_transforms_v2(dataset, target_keys=("image_id",) + COMPARED_KEYS)


def max_differences(ours: CocoDetection, peer) -> dict[str, float]:
    """The largest difference of the image and of each compared target key over every sample, matched by image id."""
    peer_index = {image_id: index for index, image_id in enumerate(peer.ids)}
    largest = dict.fromkeys(("image",) + COMPARED_KEYS, 0.0)
    for index in range(len(ours)):
        image, target = ours[index]
        peer_image, peer_target = peer[peer_index[target["image_id"]]]
        largest["image"] = max(largest["image"], max_abs_difference(image, peer_image))
        for key in COMPARED_KEYS:
            largest[key] = max(largest[key], max_abs_difference(target[key], peer_target[key]))
    return largest


def read_all(dataset) -> Callable[[], None]:
    """A pass over every sample of `dataset`, in one process."""
    def run() -> None:
        for index in range(len(dataset)):
            dataset[index]
    return run


def load_all(loader: DataLoader) -> Callable[[], None]:
    """A pass over every batch of `loader`."""
    def run() -> None:
        for _ in loader:
            pass
    return run


def time_size(settings: DataSettings, size: int, folder: Path) -> list[dict]:
    """The rows of one image size: the agreement passes, then one process (and the DataLoader)."""
    paths = make_shapes(folder / str(size), settings.images, 0, seed=settings.seed, size=size)
    passes = [max_differences(our_dataset(paths, prob, settings.seed), torchvision_dataset(paths, prob))
              for prob in (0.0, 1.0)]
    differences = {f"{key}_max_abs_diff": max(found[key] for found in passes) for key in passes[0]}
    torch.manual_seed(settings.seed)
    datasets = {"ours": our_dataset(paths, HFLIP_PROB, settings.seed),
                "torchvision": torchvision_dataset(paths, HFLIP_PROB)}
    cases = {f"{size} px, one process": {name: read_all(dataset) for name, dataset in datasets.items()}}
    if settings.workers:
        loaders = {name: DataLoader(dataset, batch_size=BATCH_SIZE, num_workers=settings.workers, collate_fn=collate_fn,
                                    persistent_workers=True) for name, dataset in datasets.items()}
        cases[f"{size} px, DataLoader {settings.workers} workers"] = {name: load_all(loader)
                                                                  for name, loader in loaders.items()}
    counts = {name: len(dataset) for name, dataset in datasets.items()}
    rows = []
    for case, runs in cases.items():
        times, _ = alternate(runs, settings.repeats, settings.warmup, desc=case)
        seconds = medians(times)
        speed = {name: counts[name] / seconds[name] for name in runs}
        rows.append(dict(case=case, images=counts["ours"], ours_s=seconds["ours"],
                         torchvision_s=seconds["torchvision"], ours_images_per_s=speed["ours"],
                         torchvision_images_per_s=speed["torchvision"], ratio=speed["ours"] / speed["torchvision"],
                         **differences, samples=times))
    return rows


def benchmark_data_pipeline(settings: DataSettings) -> list[dict]:
    """Prints the machine and one row per size and loading mode; writes data.json and data.md."""
    lines = [machine_line(), (
        f"workload: {settings.images} generated shapes images (PNG) per size, every sample read once per pass: image, "
        f"boxes, labels, masks, horizontal flip p={HFLIP_PROB}; ours: CocoDetection + build_transforms(True); "
        f"torchvision: CocoDetection + wrap_dataset_for_transforms_v2 + v2 ToImage, RandomHorizontalFlip, ToDtype; "
        f"max|diff| over every sample with the flip off and always on; median of {settings.repeats} alternating passes "
        f"after {settings.warmup} warm-up; ratio = torchvision s / ours s per image")]
    print(*lines, sep="\n", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        rows = [row for size in settings.sizes for row in time_size(settings, size, Path(folder))]
    print(table(rows, COLUMNS))
    write_report(rows, settings.output_dir, "data", lines=lines, columns=COLUMNS, options=asdict(settings))
    return rows


# The command line's options moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"add_arguments": ("workbench.cli.benchmark", "data_arguments")})
