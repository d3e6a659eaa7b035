"""Reading image files the way every dataset here does: 8-bit RGB, EXIF orientation applied, a clear error naming
the file; and what a dataset does with a file it cannot read (skip it with a counted warning, or stop)."""
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from workbench.errors import UserError

logger = logging.getLogger(__name__)

UNREADABLE_POLICIES = ("skip", "stop")
SIXTEEN_BIT_SCALE = 257  # 65535 / 255


class ImageReadError(UserError, OSError):
    """An image file is missing, truncated or not an image; the message names it."""


def to_rgb(image: Image.Image) -> Image.Image:
    """The image as 8-bit RGB: 16-bit grayscale scaled to 0-255 (PIL would clip it), palette transparency resolved."""
    if image.mode.startswith("I;16") or image.mode == "I":
        pixels = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or pixels.max(initial=0) > 255:
            pixels = pixels / SIXTEEN_BIT_SCALE
        return Image.fromarray(np.clip(pixels.round(), 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "RGB":
        image.load()  # decoded now: the file closes after this
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def load_rgb(path: str | Path, what: str = "image") -> Image.Image:
    """The image at `path` as an 8-bit RGB PIL image, EXIF orientation applied.

    Args:
        what: how the error names the image (e.g. "image id 42").

    Raises:
        ImageReadError: the file is missing or is not a readable image.
    """
    try:
        with Image.open(path) as image:
            ImageOps.exif_transpose(image, in_place=True)  # no copy when there is nothing to turn
            return to_rgb(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"cannot read {what} from {path}: {error}") from error


class UnreadableImages:
    """What a dataset does with an image file it cannot read: `stop` raises the error naming the file; `skip` counts
    the file and logs a warning naming it, and the dataset goes on without it."""

    def __init__(self, policy: str = "skip"):
        if policy not in UNREADABLE_POLICIES:
            raise UserError(f"data.unreadable_images must be one of {', '.join(UNREADABLE_POLICIES)}, got {policy!r}")
        self.policy = policy
        self.count = 0

    def skip(self, error: ImageReadError) -> None:
        """Raises `error` under `stop`; counts it and warns under `skip`."""
        if self.policy == "stop":
            raise error
        self.count += 1
        logger.warning("%s; skipped (%d unreadable image%s in this process so far; data.unreadable_images=stop "
                       "stops instead)", error, self.count, "s" * (self.count > 1))
