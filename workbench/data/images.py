"""Reading image files the way every dataset here does: RGB, EXIF orientation applied, a clear error naming the file."""
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from workbench.errors import UserError


class ImageReadError(UserError, OSError):
    """An image file is missing, truncated or not an image; the message names it."""


def load_rgb(path: str | Path, what: str = "image") -> Image.Image:
    """The image at `path` as an RGB PIL image, EXIF orientation applied.

    Args:
        what: how the error names the image (e.g. "image id 42").

    Raises:
        ImageReadError: the file is missing or is not a readable image.
    """
    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"cannot read {what} from {path}: {error}") from error
