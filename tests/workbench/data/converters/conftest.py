"""The project's reader as the judge of a converter's output file."""
import logging
from pathlib import Path

import pytest

from workbench.data.coco_files import read_annotation_file


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
