"""Classification datasets: ImageNet-style class folders, CIFAR-10/100 python batches, and the synthetic shapes set.

Every dataset yields (image, label) with `transform` applied to an RGB PIL image, and has `classes` and `targets`.
"""
import copy
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset, Subset, default_collate

from backbones.safe_pickle import load_pickle
from workbench.data.images import ImageReadError, UnreadableImages, load_rgb
from workbench.data.shapes_classification import MARKER, make_shapes_cls
from workbench.engine import distributed
from workbench.errors import MissingFileError, UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DATASETS = ("shapes", "folder", "cifar10", "cifar100")
CIFAR = {
    "cifar10": dict(folder="cifar-10-batches-py", train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"],
                    meta="batches.meta", labels="labels", names="label_names",
                    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    md5="c58f30108f718f92721af3b95e74349a"),
    "cifar100": dict(folder="cifar-100-python", train=["train"], test=["test"], meta="meta", labels="fine_labels",
                     names="fine_label_names", url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                     md5="eb9058c3a382ffc7106e4002c42a8d85"),
}


class ImageFolder(Dataset):
    """Images in `root/<class name>/*` (sorted class names are the labels 0..C-1).

    An image file that cannot be read is handled as `unreadable_images` says: `stop` with the error naming it, or
    `skip` with a warning naming it; skipped, it is replaced by the next readable image in training, and is None in
    evaluation (`collate_readable` leaves it out).
    """

    def __init__(self, root: str | Path, transform=None, train: bool = True, unreadable_images: str = "skip"):
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingFileError(f"image folder not found: {self.root}")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not self.classes:
            raise MissingFileError(f"{self.root} has no class folders; expected {self.root}/<class name>/<image>")
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            files = sorted(p for p in (self.root / name).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise MissingFileError(f"class folder {self.root / name} has no images (expected files ending in "
                                        f"{', '.join(IMAGE_EXTENSIONS)})")
            self.samples += [(path, label) for path in files]
        self.targets = [label for _, label in self.samples]
        self.transform = transform
        self.train = train
        self.unreadable = UnreadableImages(unreadable_images)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} images")
        for offset in range(len(self)):
            path, label = self.samples[(index + offset) % len(self)]
            try:
                image = load_rgb(path)
            except ImageReadError as error:
                self.unreadable.skip(error)
                if not self.train:
                    return None
                continue
            return (self.transform(image) if self.transform else image), label
        raise UserError(f"none of the {len(self)} images in {self.root} can be read")


def collate_readable(batch: list):
    """torch's default collate of the items that are not None (skipped unreadable images); None if none is left."""
    kept = [item for item in batch if item is not None]
    return default_collate(kept) if kept else None


def _field(content: dict, key: str, path: Path):
    """content[key], whether the pickle's keys came back as bytes or str."""
    for candidate in (key, key.encode()):
        if candidate in content:
            return content[candidate]
    raise UserError(f"{path} is not a CIFAR batch: it has no {key!r} entry (keys: {sorted(map(str, content))})")


def text(value) -> str:
    """A CIFAR meta file's name (bytes or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


class CifarDataset(Dataset):
    """CIFAR-10 or CIFAR-100 from the python-pickle batches of the official tarballs (`root/cifar-10-batches-py`,
    `root/cifar-100-python`), read without running code from the files; downloaded when missing and reachable."""

    def __init__(self, root: str | Path, name: str = "cifar10", train: bool = True, transform=None,
                 download: bool = True):
        if name not in CIFAR:
            raise UserError(f"unknown CIFAR dataset {name!r}; choose one of {', '.join(CIFAR)}")
        spec = CIFAR[name]
        folder = Path(root) / spec["folder"]
        files = [folder / f for f in spec["train" if train else "test"] + [spec["meta"]]]
        if download:
            fetch_cifar(Path(root), name, files)
        elif not all(f.is_file() for f in files):
            raise RuntimeError(f"{where_to_put(Path(root), name, files)}; data.download=false, so nothing was "
                               f"downloaded")
        meta = load_pickle(files[-1])
        self.classes = [text(n) for n in _field(meta, spec["names"], files[-1])]
        images, self.targets = [], []
        for path in files[:-1]:
            batch = load_pickle(path)
            data = np.asarray(_field(batch, "data", path), dtype=np.uint8)
            labels = [int(label) for label in _field(batch, spec["labels"], path)]
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
                raise UserError(f"{path}: 'data' must be [N, 3072] uint8 with one label each; got shape "
                                 f"{list(data.shape)} and {len(labels)} labels")
            if labels and (min(labels) < 0 or max(labels) >= len(self.classes)):
                raise UserError(f"{path}: {spec['labels']!r} must lie in 0..{len(self.classes) - 1} (the classes of "
                                 f"{files[-1]}); got {min(labels)}..{max(labels)}")
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            self.targets += labels
        self.images = np.concatenate(images)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index])
        return (self.transform(image) if self.transform else image), self.targets[index]


def where_to_put(root: Path, name: str, files: list[Path]) -> str:
    """Which of `files` are missing, and where to put them."""
    spec = CIFAR[name]
    missing = ", ".join(str(f) for f in files if not f.is_file())
    return (f"{name}: missing {missing}. Download {spec['url']} and extract it in {root} "
            f"(it unpacks to {root / spec['folder']}), or set data.root to the folder that holds {spec['folder']}")


def fetch_cifar(root: Path, name: str, files: list[Path]) -> None:
    """Makes sure `files` exist: the main process downloads and extracts the official tarball into `root` when they
    don't. Called on every rank, which all wait for the main process.

    Raises:
        RuntimeError: downloading failed; the message lists the missing files and where to put them.
    """
    failure = None
    if distributed.is_main_process() and not all(f.is_file() for f in files):
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(CIFAR[name]["url"], str(root), md5=CIFAR[name]["md5"])
        except Exception as error:  # no network, proxy, bad checksum: the user needs the same advice
            failure = error
    distributed.barrier()  # before raising, so that no rank waits here for ever
    if not all(f.is_file() for f in files):
        reason = f": {failure}" if failure else ""
        raise RuntimeError(f"{where_to_put(root, name, files)}; downloading failed{reason} (data.download=false "
                           f"skips the attempt)") from failure


class LabelledSubset(Subset):
    """A Subset that keeps `classes` and its own `targets`."""

    def __init__(self, dataset, indices: list[int]):
        super().__init__(dataset, indices)
        self.classes = dataset.classes
        self.targets = [dataset.targets[i] for i in indices]


def holdout_split(dataset, holdout: int, seed: int) -> tuple[LabelledSubset, LabelledSubset]:
    """A deterministic random split into (the rest, `holdout` held-out samples), e.g. CIFAR-10's 45k/5k."""
    if not 0 < holdout < len(dataset):
        raise UserError(f"data.holdout={holdout} must be between 1 and {len(dataset) - 1} (the training set has "
                         f"{len(dataset)} images)")
    order = np.random.default_rng(seed).permutation(len(dataset)).tolist()
    return LabelledSubset(dataset, sorted(order[holdout:])), LabelledSubset(dataset, sorted(order[:holdout]))


def ensure_shapes(data: dict) -> None:
    """Generates the shapes classification set in data.root unless it is complete (on the main process)."""
    root = Path(data["root"])
    if not (root / MARKER).is_file() and distributed.is_main_process():
        shapes = data["shapes"]
        make_shapes_cls(root, shapes["num_train"], shapes["num_val"], shapes["seed"], shapes["size"],
                        shapes["background"], tuple(shapes["extent"]))
    distributed.barrier()


def build_classification_datasets(data: dict, train_transform, val_transform, with_train: bool = True):
    """The training and validation sets of the config section `data`.

    With `data.holdout` > 0 the validation set is that many images held out of the training set (each with the
    validation transform); otherwise it is the val folder or the CIFAR test set. With `with_train` False
    (evaluation) the training set is not read unless the validation set comes out of it, and None stands for it.
    """
    kind = data["dataset"]
    if kind not in DATASETS:
        raise UserError(f"data.dataset={kind!r} is not supported; choose one of {', '.join(DATASETS)}")
    root = Path(data["root"])
    if kind == "shapes":
        ensure_shapes(data)

    def make(train: bool, transform):
        if kind in CIFAR:
            return CifarDataset(root, kind, train=train, transform=transform, download=data["download"])
        return ImageFolder(root / data["train_dir" if train else "val_dir"], transform, train,
                           data["unreadable_images"])

    if data["holdout"]:
        full = make(True, val_transform)
        val_set = holdout_split(full, data["holdout"], data["seed"])[1]
        if not with_train:
            return None, val_set
        full = copy.copy(full)  # the same images (read once), with the training transform
        full.transform = train_transform
        return holdout_split(full, data["holdout"], data["seed"])[0], val_set
    val_set = make(False, val_transform)
    if not with_train:
        return None, val_set
    train_set = make(True, train_transform)
    if val_set.classes != train_set.classes:
        differing = sorted(set(train_set.classes) ^ set(val_set.classes))
        raise UserError(f"the training and validation sets of {root} have different classes "
                         f"({len(train_set.classes)} vs {len(val_set.classes)}; differing: {differing[:10]})")
    return train_set, val_set
