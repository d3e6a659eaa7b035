"""Helpers of the converter tests: tiny images written into tmp_path, and the project's reader as the judge of an
output file."""
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.data.coco_files import read_annotation_file


def write_image(path: Path, width: int, height: int) -> Path:
    """Writes a small RGB picture of `width` x `height` to `path` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(width * height).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def read_clean(caplog):
    """`read_clean(path)`: the file as the project's reader reads it (segm=True), asserting it warns about nothing."""
    def read(path: Path) -> dict:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            content = read_annotation_file(path, segm=True)
        assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
        return content
    return read
