"""Our `features_only` ResNet (C2-C5) against torchvision's IntermediateLayerGetter and timm's `features_only`, on the
same weights and input, in eval (forward under inference_mode) and in training (forward and backward with
frozen_stages=1: stem and stage 1 frozen, the rest trainable, as torchvision's detectors train).

Every model holds the same weights: torchvision's initialisation with randomised BatchNorm statistics. Ours and
torchvision's use frozen BatchNorm, as torchvision's detectors do; timm keeps its BatchNorm2d in eval and gets frozen
BatchNorm (`timm.layers.freeze_batch_norm_2d`) for training. "ours, unfused" is ours with `set_fused(False)`: the
modules as they are, the path our optimisations are tested against. The runs alternate after warm-up and the table
shows medians; the outputs of the last round are compared. "MiB" is the memory of one call above what was in use
before it, once every model has run and with gradients and folded weights dropped first, so that what ours builds and
keeps counts (`timing.peak_memory_after_warmup`).

With `--device cuda` everything runs in channels_last under fp16 autocast with cudnn.benchmark on.
"""
import copy
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d

import backbones
from backbones.old_paths import moved_names
from workbench.benchmarks.timing import (
    alternate,
    machine_line,
    max_abs_difference,
    max_relative_difference,
    medians,
    peak_memory_after_warmup,
    table,
    write_report,
)
from workbench.errors import UserError

RETURN_LAYERS = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
OUT_INDICES = (1, 2, 3, 4)
MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
MODES = ("eval", "train")
FROZEN_STAGES = 1
OURS, UNFUSED, COMPILED = "ours", "ours, unfused", "ours + torch.compile"
PEERS = ("torchvision", "timm")

COLUMNS = {"model": "model", "mode": "mode", "batch": "batch", "ours_ms": "ours ms", "unfused_ms": "unfused ms",
           "torchvision_ms": "torchvision ms", "timm_ms": "timm ms", "torchvision_ratio": "torchvision/ours",
           "timm_ratio": "timm/ours", "torchvision_max_abs_diff": "max|diff| tv",
           "timm_max_abs_diff": "max|diff| timm", "max_rel_diff": "max rel diff", "ours_peak_mib": "ours MiB",
           "torchvision_peak_mib": "torchvision MiB", "timm_peak_mib": "timm MiB", "rounds": "rounds"}


@dataclass
class BackboneSettings:
    """What the backbone case times (`tools/benchmark.py backbone`).

    Attributes:
        model: backbones to time (of MODELS).
        mode: eval (forward under inference_mode) and/or train (forward + backward, frozen_stages=1).
        batch: batch sizes.
        size: input height and width.
        repeats: timed rounds of resnet50 at batch 1; divided by batch x depth / 50, at least 5.
        warmup: untimed rounds first.
        threads: CPU threads.
        device: cpu or cuda (channels_last, fp16 autocast, cudnn.benchmark, for every model).
        compile: also time ours under torch.compile (compile time reported).
        output_dir: where backbone.json and .md go.
    """

    model: tuple[str, ...] = ("resnet50", "resnet101")
    mode: tuple[str, ...] = MODES
    batch: tuple[int, ...] = (1, 8)
    size: int = 224
    repeats: int = 20
    warmup: int = 1
    threads: int = torch.get_num_threads()
    device: str = "cpu"
    compile: bool = False
    output_dir: str = "output/benchmarks"


def rounds_for(settings: BackboneSettings, model: str, batch: int) -> int:
    """Fewer rounds for deeper models and larger batches, so that the whole case takes a few minutes."""
    depth = int("".join(c for c in model if c.isdigit()) or 50)
    return max(min(5, settings.repeats), round(settings.repeats * 50 / (depth * batch)))


def randomise_statistics(model: nn.Module, seed: int = 0) -> None:
    """Gives every BatchNorm non-trivial statistics and affine parameters, so that folding them is tested."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm2d, FrozenBatchNorm2d)):
                for tensor, low, high in ((module.weight, 0.5, 1.0), (module.bias, -0.2, 0.2),
                                          (module.running_mean, -0.2, 0.2), (module.running_var, 0.5, 1.5)):
                    tensor.copy_(torch.empty(tensor.shape).uniform_(low, high, generator=generator))


def freeze_stem_and_stage1(model: nn.Module) -> nn.Module:
    for name in ("conv1", "bn1", "layer1"):
        for param in getattr(model, name).parameters():
            param.requires_grad_(False)
    return model


def build_models(name: str, mode: str, weights: Path) -> dict[str, nn.Module]:
    """Ours (fused by default), ours unfused, torchvision's and timm's feature extractors over the weights file."""
    import timm

    reference = getattr(torchvision.models, name)(norm_layer=FrozenBatchNorm2d)
    reference.load_state_dict(torch.load(weights, weights_only=True))
    ours = backbones.create_backbone(name, pretrained=str(weights), features_only=True, out_indices=OUT_INDICES,
                                     norm="frozen_bn", frozen_stages=FROZEN_STAGES if mode == "train" else -1)
    peer_timm = timm.create_model(name, pretrained=True, features_only=True, out_indices=OUT_INDICES,
                                  pretrained_cfg_overlay=dict(file=str(weights)))
    if mode == "train":
        freeze_stem_and_stage1(reference)
        peer_timm = freeze_stem_and_stage1(timm.layers.freeze_batch_norm_2d(peer_timm))
    # torchvision's detector body (its IntermediateLayerGetter, a private class), reached through public BackboneWithFPN
    body = BackboneWithFPN(reference, RETURN_LAYERS, ours.feature_info.channels(), out_channels=256).body
    return {OURS: ours, UNFUSED: copy.deepcopy(ours).set_fused(False), "torchvision": body, "timm": peer_timm}


def as_list(outputs) -> list[torch.Tensor]:
    return list(outputs.values()) if isinstance(outputs, dict) else list(outputs)


def make_run(model: nn.Module, x: torch.Tensor, mode: str, device: str):
    """One call of `model` on `x` as the case times it; returns the maps."""
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=device == "cuda")
    if mode == "eval":
        model.eval()

        def run():
            with torch.inference_mode(), autocast:
                return as_list(model(x))
        return run
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]

    def step():
        for param in params:
            param.grad = None
        with autocast:
            maps = as_list(model(x))
            loss = sum(m.float().mean() for m in maps)
        loss.backward()
        return [m.detach() for m in maps]
    return step


def benchmark_backbone(settings: BackboneSettings) -> list[dict]:
    """Prints the machine, times every model, mode and batch, and writes backbone.json and backbone.md."""
    torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    if settings.device == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda needs a CUDA GPU; torch.cuda.is_available() is False here")
        torch.backends.cudnn.benchmark = True
    memory_format = torch.channels_last if settings.device == "cuda" else torch.contiguous_format
    lines = [machine_line(), (
        f"workload: {', '.join(settings.model)} features C2-C5, {settings.size} px, batch "
        f"{', '.join(map(str, settings.batch))}, {settings.device}"
        f"{' (channels_last, fp16 autocast)' if settings.device == 'cuda' else ''}; eval: forward under "
        f"inference_mode; train: forward + backward of the maps' means, frozen_stages={FROZEN_STAGES}, frozen BN; "
        f"median of alternating rounds after {settings.warmup} warm-up; ratio = peer ms / ours ms")]
    print(*lines, sep="\n", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in settings.model:
            torch.manual_seed(0)
            reference = getattr(torchvision.models, name)()
            randomise_statistics(reference)
            weights = Path(folder) / f"{name}.pth"
            torch.save(reference.state_dict(), weights)
            del reference
            for mode in settings.mode:
                models = build_models(name, mode, weights)
                for model in models.values():
                    model.to(device, memory_format=memory_format)
                for batch in settings.batch:
                    rows.append(time_configuration(settings, name, mode, batch, models, device, memory_format))
                del models
    write_report(rows, settings.output_dir, "backbone", lines=lines, columns=columns_for(rows),
                 options=asdict(settings))
    return rows


def time_configuration(settings, name: str, mode: str, batch: int, models: dict, device: torch.device,
                       memory_format) -> dict:
    """One row: every model on one input, alternating."""
    generator = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, 3, settings.size, settings.size, generator=generator).to(device, memory_format=memory_format)
    runs = {label: make_run(model, x, mode, settings.device) for label, model in models.items()}
    compile_seconds = None
    if settings.compile:
        compiled = torch.compile(copy.deepcopy(models[UNFUSED]))
        runs[COMPILED] = make_run(compiled, x, mode, settings.device)
        start = time.perf_counter()
        runs[COMPILED]()
        compile_seconds = time.perf_counter() - start
    _, peak = peak_memory_after_warmup(runs, models, device)
    rounds = rounds_for(settings, name, batch)
    synchronize = torch.cuda.synchronize if settings.device == "cuda" else None
    times, outputs = alternate(runs, rounds, settings.warmup, desc=f"{name} {mode} batch {batch}",
                               synchronize=synchronize)
    seconds = medians(times)
    row = dict(model=name, mode=mode, batch=batch, ours_ms=1000 * seconds[OURS], unfused_ms=1000 * seconds[UNFUSED])
    for peer in PEERS:
        row[f"{peer}_ms"] = 1000 * seconds[peer]
    for peer in PEERS:
        row[f"{peer}_ratio"] = seconds[peer] / seconds[OURS]
    row["unfused_ratio"] = seconds[UNFUSED] / seconds[OURS]
    for peer in (*PEERS, UNFUSED):
        key = "unfused" if peer == UNFUSED else peer
        row[f"{key}_max_abs_diff"] = max_abs_difference(outputs[OURS], outputs[peer])
        row[f"{key}_max_rel_diff"] = max_relative_difference(outputs[OURS], outputs[peer])
    row["max_rel_diff"] = max(row[f"{peer}_max_rel_diff"] for peer in PEERS)
    row["rounds"] = rounds
    row.update(ours_peak_mib=peak[OURS], **{f"{peer}_peak_mib": peak[peer] for peer in PEERS})
    row["fused_cache_mib"] = models[OURS].fused_cache_bytes / 2 ** 20
    if settings.compile:
        row.update(compiled_ms=1000 * seconds[COMPILED], compiled_ratio=seconds["torchvision"] / seconds[COMPILED],
                   compile_seconds=compile_seconds)
    row["samples_ms"] = {label: [1000 * t for t in samples] for label, samples in times.items()}
    return row


def columns_for(rows: list[dict]) -> dict[str, str]:
    """The table's columns, with those of torch.compile when it was timed."""
    columns = dict(COLUMNS)
    if rows and "compiled_ms" in rows[0]:
        columns.update(compiled_ms="compiled ms", compiled_ratio="torchvision/compiled", compile_seconds="compile s")
    return columns


def print_table(rows: list[dict]) -> None:
    print(table(rows, columns_for(rows)))


# The command line's options moved to workbench.cli (deprecated path, for one release).
__getattr__ = moved_names(__name__, {"add_arguments": ("workbench.cli.benchmark", "backbone_arguments")})
