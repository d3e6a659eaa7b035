"""Standard deviations of layer responses, as in the paper's Fig. 7: the output of every 3x3 convolution of the
residual functions after its BatchNorm, before the ReLU and the addition (bn1 and bn2 of a basic block, bn2 of a
bottleneck; the stem is not a residual function and is left out), over a set of validation images.

The paper's observation: residual functions are closer to zero than the unreferenced functions of plain nets, so
ResNets have smaller responses, and deeper ResNets smaller ones still.

The command line is `tools/layer_responses.py`.
"""
from pathlib import Path

import matplotlib
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from backbones.blocks import BasicBlock, Bottleneck
from workbench.tasks.classification import build_datasets
from workbench.tasks.classification_model import load_classifier

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from workbench.errors import UserError


def three_by_three_norms(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, norm layer) after every 3x3 convolution of the blocks, in network order: bn1 and bn2 of each basic
    block, bn2 of each bottleneck (plain nets have the same blocks without shortcuts)."""
    layers = []
    for name, block in model.named_modules():
        if isinstance(block, (BasicBlock, Bottleneck)):
            norms = ("bn1", "bn2") if isinstance(block, BasicBlock) else ("bn2",)
            layers += [(f"{name}.{norm}", getattr(block, norm)) for norm in norms]
    return layers


@torch.inference_mode()
def response_stds(model: nn.Module, batches, device: torch.device) -> list[tuple[str, float]]:
    """(layer name, std of all its response values over `batches`) for every 3x3 layer, in order; the model runs in
    eval mode.

    Args:
        batches: image tensors [N, 3, H, W], or (images, labels) pairs such as a DataLoader yields.
    """
    layers = three_by_three_norms(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no basic or bottleneck blocks whose 3x3 layers could be measured")
    sums = torch.zeros(len(layers), 3, dtype=torch.float64)  # count, sum, sum of squares

    def recorder(index: int):
        def hook(module, inputs, output):
            values = output.detach().double()
            sums[index] += torch.stack([torch.tensor(values.numel(), dtype=torch.float64), values.sum().cpu(),
                                        values.square().sum().cpu()])
        return hook

    handles = [norm.register_forward_hook(recorder(i)) for i, (_, norm) in enumerate(layers)]
    try:
        model.eval().to(device)
        for batch in batches:
            model((batch[0] if isinstance(batch, (tuple, list)) else batch).to(device))
    finally:
        for handle in handles:
            handle.remove()
    count, total, squares = sums.unbind(1)
    if not count[0]:
        raise ValueError("response_stds got no images")
    variance = (squares - total * total / count) / (count - 1)
    return [(name, float(std)) for (name, _), std in zip(layers, variance.clamp_min(0).sqrt())]


def checkpoint_stds(path: str | Path, num_images: int, batch_size: int, device: torch.device
                    ) -> tuple[str, list[tuple[str, float]]]:
    """(model name, response stds) of a train_cls.py checkpoint on up to `num_images` of its validation set, with
    the checkpoint's own evaluation transform (data.eval_resize, data.eval_crop, data.mean/std or the model's)."""
    model, config = load_classifier(path)
    _, val_set = build_datasets(config, model, with_train=False)
    subset = Subset(val_set, range(min(num_images, len(val_set))))
    return config["model"]["backbone"], response_stds(model, DataLoader(subset, batch_size=batch_size), device)


def plot_responses(curves: dict[str, list[float]], path: str | Path) -> Path:
    """Fig. 7: stds by layer index (top) and sorted by magnitude (bottom), one line per model."""
    figure, (by_layer, by_size) = plt.subplots(2, 1, figsize=(8, 7))
    for label, stds in curves.items():
        by_layer.plot(range(1, len(stds) + 1), stds, marker=".", label=label)
        by_size.plot(range(1, len(stds) + 1), sorted(stds, reverse=True), marker=".", label=label)
    by_layer.set(xlabel="layer index (original)", ylabel="std", title="responses of 3x3 layers (after BN)")
    by_size.set(xlabel="layer index (sorted by magnitude)", ylabel="std")
    for axis in (by_layer, by_size):
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def format_table(curves: dict[str, list[float]]) -> str:
    """Per model: number of 3x3 layers, mean and max std, and the stds in order."""
    width = max(len("model"), *(len(label) for label in curves))
    lines = [f"{'model':<{width}}  layers  mean std   max std  stds by layer"]
    for label, stds in curves.items():
        listed = " ".join(f"{s:.2f}" for s in stds)
        lines.append(f"{label:<{width}}  {len(stds):>6}  {sum(stds) / len(stds):8.3f}  {max(stds):8.3f}  {listed}")
    return "\n".join(lines)


def plot_layer_responses(checkpoints: list[str], output: str | Path, labels: list[str] | None, num_images: int,
                         batch_size: int) -> dict[str, list[float]]:
    """Measures the layer responses of each train_cls.py checkpoint on `num_images` validation images, `batch_size`
    at a time; prints the table and draws the curves (named by `labels`, default: the model names) to `output`;
    returns the curves."""
    if labels and len(labels) != len(checkpoints):
        raise UserError(f"--labels gives {len(labels)} labels for {len(checkpoints)} checkpoints")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    curves = {}
    for index, path in enumerate(checkpoints):
        name, stds = checkpoint_stds(path, num_images, batch_size, device)
        curves[labels[index] if labels else name] = [std for _, std in stds]
    print(format_table(curves))
    print(f"picture: {plot_responses(curves, output)}")
    return curves
