"""Our `features_only` ResNet against torchvision's IntermediateLayerGetter on the same weights and input, and with
frozen BatchNorm folded into the convolutions (`backbones.fuse_batchnorm`)."""
import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FrozenBatchNorm2d
from tqdm import tqdm

import backbones

RETURN_LAYERS = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}


def time_once(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        model(x)
    return time.perf_counter() - start


def max_difference(a, b) -> float:
    maps_a = list(a.values()) if isinstance(a, dict) else a
    maps_b = list(b.values()) if isinstance(b, dict) else b
    return max((x - y).abs().max().item() for x, y in zip(maps_a, maps_b))


def benchmark_backbone(args: argparse.Namespace) -> list[dict]:
    """Times torchvision's IntermediateLayerGetter, our features_only model and our BN-folded model, interleaved."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reference = getattr(torchvision.models, args.model)(norm_layer=FrozenBatchNorm2d)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{args.model}.pth"
        torch.save(reference.state_dict(), path)
        ours = backbones.create_backbone(args.model, pretrained=str(path), features_only=True, out_indices=(1, 2, 3, 4),
                                         norm="frozen_bn")
    variants = {
        "torchvision IntermediateLayerGetter": IntermediateLayerGetter(reference, RETURN_LAYERS).eval(),
        "ours features_only": ours.eval(),
        "ours features_only + fuse_batchnorm": backbones.fuse_batchnorm(copy.deepcopy(ours)).eval(),
    }
    x = torch.randn(args.batch, 3, args.size, args.size)
    with torch.inference_mode():
        expected = variants["torchvision IntermediateLayerGetter"](x)
        differences = {name: max_difference(expected, model(x)) for name, model in variants.items()}
    for model in variants.values():
        for _ in range(args.warmup):
            time_once(model, x)
    times = {name: [] for name in variants}
    for _ in tqdm(range(args.repeats), desc=f"{args.model} {args.batch}x3x{args.size}x{args.size}"):
        for name, model in variants.items():
            times[name].append(time_once(model, x))
    peer = statistics.median(times["torchvision IntermediateLayerGetter"])
    return [dict(variant=name, median_ms=1000 * statistics.median(t), speedup=peer / statistics.median(t),
                 max_abs_diff=differences[name]) for name, t in times.items()]


def print_table(rows: list[dict]) -> None:
    print(f"{'variant':<40} {'median ms':>10} {'speedup vs torchvision':>23} {'max |diff|':>11}")
    for row in rows:
        print(f"{row['variant']:<40} {row['median_ms']:>10.1f} {row['speedup']:>22.2f}x {row['max_abs_diff']:>11.2e}")
