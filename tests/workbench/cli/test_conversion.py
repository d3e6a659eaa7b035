"""`tools/convert_dataset.py`: a Penn-Fudan-style folder split into train and val files, and bad input as one line
on stderr naming the file, exit code 2 and nothing written."""
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from workbench import cli
from workbench.cli import conversion
from workbench.data.coco_files import read_annotation_file

from tests.workbench.data.converters.writers import shape, voc_xml, write_image, write_labelme

ROOT = Path(__file__).resolve().parents[3]


def pennfudan(root: Path) -> None:
    for index in range(5):
        write_image(root / "PNGImages" / f"FudanPed{index:05d}.png", 32, 24)
        mask = np.zeros((24, 32), np.uint8)
        mask[2:10, 2:2 + 4 * index] = 1
        (root / "PedMasks").mkdir(exist_ok=True)
        Image.fromarray(mask).save(root / "PedMasks" / f"FudanPed{index:05d}_mask.png")


def test_the_pennfudan_example_writes_a_seeded_split(tmp_path, tool_parser, capsys, caplog):
    pennfudan(tmp_path)
    argv = ["masks", "--images", str(tmp_path / "PNGImages"), "--masks", str(tmp_path / "PedMasks"),
            "--mask-pattern", "{stem}_mask.png", "--class-name", "person", "--val-fraction", "0.4", "--seed", "0",
            "--output", str(tmp_path / "annotations")]
    summary = cli.run(conversion.convert, tool_parser("convert_dataset"), argv)
    assert summary["images"] == 5 and summary["empty_images"] == 1 and summary["instances"] == {"person": 4}
    with caplog.at_level(logging.WARNING):
        train, val = (read_annotation_file(tmp_path / "annotations" / f"instances_{split}.json", segm=True)
                      for split in ("train", "val"))
    assert not caplog.records
    assert len(train["images"]) == 3 and len(val["images"]) == 2
    assert "4 instances" in capsys.readouterr().out


def test_a_bad_yolo_line_is_one_error_line_exit_2_and_no_file(tmp_path):
    write_image(tmp_path / "images" / "a.png", 32, 24)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n")
    output = tmp_path / "out"
    command = [sys.executable, str(ROOT / "tools" / "convert_dataset.py"), "yolo", "--images", str(tmp_path / "images"),
               "--labels", str(tmp_path / "labels"), "--classes", "thing", "--output", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == cli.USER_ERROR_EXIT_CODE
    assert result.stderr.count("\n") == 1 and f"{tmp_path / 'labels' / 'a.txt'}:2: 4 numbers" in result.stderr
    assert not output.exists()


def test_every_format_through_the_command_line(tmp_path, tool_parser):
    write_image(tmp_path / "images" / "a.jpg", 48, 32)
    (tmp_path / "xml").mkdir()
    (tmp_path / "xml" / "a.xml").write_text(voc_xml("a.jpg", 48, 32, [("dog", 1, 1, 10, 10, 1)]))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (tmp_path / "names.txt").write_text("cat\ndog\n")
    write_labelme(tmp_path / "images" / "a.json", "a.jpg", [shape("dog", [[1, 1], [9, 1], [9, 9]])])
    common = ["--images", str(tmp_path / "images"), "--output"]
    runs = {"voc": ["voc", "--annotations", str(tmp_path / "xml"), "--discover-classes", "--difficult", "skip"],
            "yolo": ["yolo", "--labels", str(tmp_path / "labels"), "--classes", str(tmp_path / "names.txt")],
            "labelme": ["labelme", "--annotations", str(tmp_path / "images")]}
    summaries = {name: cli.run(conversion.convert, tool_parser("convert_dataset"),
                               argv + common + [str(tmp_path / f"{name}.json")]) for name, argv in runs.items()}
    assert summaries["voc"]["instances"] == {"dog": 0} and summaries["voc"]["notes"] == {
        "difficult objects: skipped": 1}
    assert summaries["yolo"]["instances"] == {"cat": 0, "dog": 1}
    assert summaries["labelme"]["instances"] == {"dog": 1}
    assert all((tmp_path / f"{name}.json").is_file() for name in runs)
