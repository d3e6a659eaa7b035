"""Builds every registered backbone, checks its feature maps, and loads one checkpoint in every supported format.

This is what `make demo` runs until the detection demo exists. Nothing is downloaded: the checkpoints are written
from a randomly initialised torchvision ResNet-50 into a temporary folder.

The command line is `tools/backbone_table.py`.
"""
import pickle
import tempfile
from pathlib import Path

import torch
import torchvision
from safetensors.torch import save_file
from tqdm import tqdm

import backbones


def feature_rows(names: list[str], size: int) -> list[dict]:
    """Parameters and feature maps of each backbone, measured on a real forward."""
    rows = []
    for name in tqdm(names, desc="building backbones"):
        model = backbones.create_backbone(name, features_only=True).eval()
        side = 32 if name.endswith("_cifar") else size
        with torch.no_grad():
            maps = model(torch.randn(1, 3, side, side))
        params = sum(p.numel() for p in backbones.create_backbone(name).parameters())
        measured = [(m.shape[1], side // m.shape[-1]) for m in maps]
        declared = list(zip(model.feature_info.channels(), model.feature_info.reduction()))
        rows.append(dict(name=name, params=params, maps=measured, agree=measured == declared))
    return rows


def print_feature_table(rows: list[dict]) -> None:
    width = max(len("backbone"), *(len(row["name"]) for row in rows))
    print(f"\n{'backbone':<{width}} {'params':>12}  {'feature maps (channels/stride)':<52} feature_info")
    for row in rows:
        maps = " ".join(f"{c}/{r}" for c, r in row["maps"])
        print(f"{row['name']:<{width}} {row['params']:>12,}  {maps:<52} {'agrees' if row['agree'] else 'DIFFERS'}")


def write_formats(model: torch.nn.Module, folder: Path) -> dict[str, Path]:
    """Writes `model`'s weights as torchvision, timm safetensors, detectron2 and mmpretrain files."""
    state = model.state_dict()
    files = {"torchvision .pth": folder / "tv.pth", "timm .safetensors": folder / "timm.safetensors",
             "detectron2 .pkl": folder / "d2.pkl", "mmpretrain .pth": folder / "mm.pth"}
    torch.save(state, files["torchvision .pth"])
    save_file({k: v.contiguous() for k, v in state.items()}, str(files["timm .safetensors"]))
    with open(files["detectron2 .pkl"], "wb") as f:
        pickle.dump({"model": detectron2_names(state), "__author__": "backbone_table demo"}, f)
    mm = {("head." if k.startswith("fc.") else "backbone.") + k: v for k, v in state.items()}
    torch.save({"state_dict": mm, "meta": {}}, files["mmpretrain .pth"])
    return files


def detectron2_names(state: dict) -> dict:
    """torchvision names -> detectron2 names (numpy arrays), as detectron2's conversion script writes them."""
    renamed = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        new = key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")
        for i in range(1, 5):
            new = new.replace(f"layer{i}.", f"res{i + 1}.")
        for i in range(1, 4):
            new = new.replace(f"bn{i}.", f"conv{i}.norm.")
        new = "stem." + new if new.startswith(("conv1.", "conv1.norm.")) else new.replace("fc.", "linear.")
        renamed[new] = value.numpy()
    return renamed


def print_format_table(folder: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet50().eval()
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = reference(x)
    print(f"\n{'file written from torchvision resnet50':<40} {'detected format':<16} max |logit diff|")
    for label, path in write_formats(reference, folder).items():
        model = backbones.create_backbone("resnet50").eval()
        report = backbones.load_weights(model, path)
        with torch.no_grad():
            difference = (model(x) - expected).abs().max().item()
        print(f"{label:<40} {report['format']:<16} {difference:.2e}")


def print_backbone_table(pattern: str, size: int) -> None:
    """Prints the feature maps of every backbone whose name matches the fnmatch `pattern` (ImageNet nets at `size`
    px), then one checkpoint loaded in every supported format."""
    print_feature_table(feature_rows(backbones.list_backbones(pattern), size))
    with tempfile.TemporaryDirectory() as folder:
        print_format_table(Path(folder))
