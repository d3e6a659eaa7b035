"""Parameters and multiply-adds of registered models, counted by torch.utils.flop_counter on a real forward.

The paper's Table 1 "FLOPs" are multiply-adds: FlopCounterMode counts 2 FLOPs per multiply-add, so GMACs here are
its count / 2 (torchvision's "GFLOPS" in its model tables are the same multiply-adds).

The command line is `tools/model_info.py`.
"""

import torch
from torch.utils.flop_counter import FlopCounterMode

import backbones


def macs_by_module(model: torch.nn.Module, input_size: tuple[int, int, int]) -> dict[str, int]:
    """Multiply-adds of one forward of a batch of one image of `input_size` (C, H, W), keyed as FlopCounterMode keys
    them: "Global" for the whole model, then module paths under its class name ("ResNet.layer1")."""
    model.eval()
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *input_size, device=device))
    return {module: sum(counts.values()) // 2 for module, counts in counter.get_flop_counts().items()}


def model_facts(name: str, size: int | None = None, **options) -> dict:
    """Parameters and multiply-adds (in total and per stage: conv1, layer1.., fc) of `create_backbone(name, **options)`
    at `size` px (default: its pretrained_cfg input size), built on the meta device: shapes only, no arithmetic."""
    with torch.device("meta"):
        model = backbones.create_backbone(name, **options)
    channels, height, width = model.pretrained_cfg["input_size"]
    input_size = (channels, size, size) if size else (channels, height, width)
    macs = macs_by_module(model, input_size)
    prefix = type(model).__name__ + "."
    stages = {child: macs[prefix + child] for child, _ in model.named_children() if prefix + child in macs}
    return dict(name=name, input_size=input_size, params=sum(p.numel() for p in model.parameters()),
                macs=macs["Global"], stages=stages)


def format_table(rows: list[dict], per_stage: bool = False) -> str:
    """An aligned table: model, input, params (M), GMACs, and with `per_stage` the GMACs of each stage."""
    width = max(len("model"), *(len(row["name"]) for row in rows))
    stages = list(dict.fromkeys(stage for row in rows for stage in row["stages"])) if per_stage else []
    lines = [f"{'model':<{width}}  {'input':>9}  {'params (M)':>10}  {'GMACs':>8}"
             + "".join(f"  {stage:>7}" for stage in stages)]
    for row in rows:
        side = "x".join(str(s) for s in row["input_size"][1:])
        cells = "".join(f"  {row['stages'][s] / 1e9:7.3f}" if s in row["stages"] else f"  {'':>7}" for s in stages)
        lines.append(f"{row['name']:<{width}}  {side:>9}  {row['params'] / 1e6:10.2f}  {row['macs'] / 1e9:8.3f}{cells}")
    return "\n".join(lines)


def print_model_facts(names: list[str] = (), size: int | None = None, style: str | None = None,
                      num_classes: int | None = None, per_stage: bool = False) -> list[dict]:
    """Counts the models that `names` (names or fnmatch patterns; default: every registered model) match, at `size`
    px (default: each model's own), with `style` and `num_classes` when given; prints the table (per stage too with
    `per_stage`) and returns its rows."""
    names = [match for name in names or ["*"]
             for match in (backbones.list_backbones(name) if any(c in name for c in "*?[") else [name])]
    options = {key: value for key, value in (("style", style), ("num_classes", num_classes)) if value is not None}
    rows = [model_facts(name, size, **options) for name in names]
    print(format_table(rows, per_stage))
    return rows
