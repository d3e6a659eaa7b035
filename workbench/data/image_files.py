"""A user's own pictures: an image file, a folder of them or a glob pattern, read one by one so that a file that
cannot be read is reported and skipped instead of stopping the run."""
import glob
import os
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2.functional import pil_to_tensor

from workbench.data.classification import IMAGE_EXTENSIONS
from workbench.data.images import ImageReadError, load_rgb
from workbench.errors import MissingFileError


def find_images(source: str | Path) -> list[Path]:
    """The files `source` names, sorted: the file itself; every file with an image extension in a folder and its
    subfolders; or every file matching a glob pattern (`**` reaches into subfolders).

    Raises:
        MissingFileError: nothing is found; the message names `source` and the extensions looked for.
    """
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise MissingFileError(f"folder {path} holds no images (files ending in {', '.join(IMAGE_EXTENSIONS)})")
        return files
    files = sorted(Path(p) for p in glob.glob(str(source), recursive=True) if Path(p).is_file())
    if not files:
        raise MissingFileError(f"no image file, folder or glob match: {source}")
    return files


def picture_names(files: list[Path]) -> list[str]:
    """A distinct file name per input for its picture: the path below the inputs' common folder, with `__` for `/`
    and the suffix `.jpg` (an index is added where two inputs would share a name)."""
    resolved = [file.resolve() for file in files]
    common = Path(os.path.commonpath([path.parent for path in resolved])) if files else Path()
    names, seen = [], set()
    for index, path in enumerate(resolved, start=1):
        name = "__".join(path.relative_to(common).with_suffix(".jpg").parts)
        if name in seen:
            name = f"{Path(name).stem}_{index}.jpg"
        seen.add(name)
        names.append(name)
    return names


class ImageFiles(Dataset):
    """Item i: `(i, transform(image) or None, error message or None)` for `files[i]`, the image read as 8-bit RGB
    (EXIF orientation applied). An unreadable file gives None and the error naming it; the caller counts and reports
    these (a DataLoader worker's logging would not reach the main process's counts).

    Args:
        files: the image files.
        transform: called on the RGB PIL image; None gives a [3, H, W] uint8 tensor.
    """

    def __init__(self, files: list[Path], transform: Callable[[Image.Image], torch.Tensor] | None = None):
        self.files = files
        self.transform = transform or pil_to_tensor

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = load_rgb(self.files[index])
        except ImageReadError as error:
            return index, None, str(error)
        return index, self.transform(image), None


def as_list(batch: list) -> list:
    """A DataLoader collate that keeps the items as they are."""
    return batch
