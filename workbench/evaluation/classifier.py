"""Scoring a classifier on a dataset, sharded across ranks: top-1/top-5, loss, per-class accuracy, confusion matrix.

Ten-crop batches ([B, 10, 3, H, W], the paper's Table 3 protocol) are scored by the mean of the crops' softmax.
"""
from pathlib import Path

import matplotlib
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from workbench.data.classification import collate_readable
from workbench.engine import distributed
from workbench.engine.stop_signals import ignore_stop_signals

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from workbench.errors import UserError

MAX_LABELLED_CLASSES = 40  # confusion matrices with more classes are drawn without tick labels


def class_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities [B, C]; for multi-crop input [B, K, 3, H, W], the mean over the K crops' softmax."""
    if images.dim() == 5:
        batch, crops = images.shape[:2]
        return model(images.flatten(0, 1)).float().softmax(1).view(batch, crops, -1).mean(1)
    return model(images).float().softmax(1)


@torch.inference_mode()
def evaluate_classifier(model: nn.Module, dataset, device: torch.device, batch_size: int = 64,
                        workers: int = 0) -> dict:
    """Top-1/top-5 accuracy (%), mean loss, per-class accuracy and the confusion matrix of `dataset`.

    Each rank scores its share; the counts are gathered and summed on the main process, which alone returns the
    result (the others return an empty dict).
    """
    model.eval()
    rank, world = distributed.get_rank(), distributed.get_world_size()
    shard = Subset(dataset, list(range(rank, len(dataset), world)))
    loader = DataLoader(shard, batch_size=batch_size, num_workers=workers, generator=torch.Generator(),
                        pin_memory=device.type == "cuda", worker_init_fn=ignore_stop_signals,
                        collate_fn=collate_readable)
    num_classes = len(dataset.classes)
    top_k = min(5, num_classes)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    in_top_k, loss_sum = 0, 0.0
    for batch in tqdm(loader, desc="eval", disable=not distributed.is_main_process(), dynamic_ncols=True):
        if batch is None:
            continue
        images, labels = batch
        probabilities = class_probabilities(model, images.to(device, non_blocking=True)).cpu()
        if probabilities.shape[1] != num_classes:
            raise UserError(f"the model predicts {probabilities.shape[1]} classes but the dataset has {num_classes} "
                             f"({', '.join(dataset.classes[:10])}{', ...' if num_classes > 10 else ''}); set "
                             f"model.num_classes={num_classes}")
        loss_sum += F.nll_loss(probabilities.clamp_min(1e-12).log(), labels, reduction="sum").item()
        in_top_k += (probabilities.topk(top_k, dim=1).indices == labels[:, None]).any(1).sum().item()
        confusion += torch.bincount(labels * num_classes + probabilities.argmax(1),
                                    minlength=num_classes ** 2).view(num_classes, num_classes)
    parts = distributed.gather_to_main((confusion, in_top_k, loss_sum))
    if parts is None:
        return {}
    confusion = sum(part[0] for part in parts)
    images = int(confusion.sum())
    per_class = confusion.sum(1)
    correct = confusion.diag()
    return {
        "images": images,
        "top1": 100.0 * correct.sum().item() / images,
        "top5": 100.0 * sum(part[1] for part in parts) / images,
        "loss": sum(part[2] for part in parts) / images,
        "per_class": [{"class": name, "images": int(n), "top1": 100.0 * int(c) / max(int(n), 1)}
                      for name, n, c in zip(dataset.classes, per_class, correct)],
        "confusion": confusion.tolist(),
    }


def format_summary(results: dict) -> str:
    """One line: images, top-1, top-5 (top-k when there are fewer than 5 classes), loss."""
    top_k = min(5, len(results["per_class"]))
    return (f"{results['images']} images  top-1 {results['top1']:.2f}%  top-{top_k} {results['top5']:.2f}%  "
            f"loss {results['loss']:.4f}")


def format_per_class(results: dict, limit: int = 20) -> str:
    """A table of per-class accuracy; beyond `limit` classes, only the `limit` worst."""
    rows = results["per_class"]
    if len(rows) > limit:
        rows = sorted(rows, key=lambda row: row["top1"])[:limit]
        title = f"the {limit} worst of {len(results['per_class'])} classes"
    else:
        title = "per class"
    width = max(len("class"), *(len(row["class"]) for row in rows))
    lines = [title, f"{'class':<{width}}  images  top-1 %"]
    lines += [f"{row['class']:<{width}}  {row['images']:>6}  {row['top1']:7.2f}" for row in rows]
    return "\n".join(lines)


def plot_confusion(results: dict, path: str | Path) -> Path:
    """Draws the row-normalised confusion matrix (true class down, predicted class across) to a PNG."""
    confusion = torch.tensor(results["confusion"], dtype=torch.float64)
    rates = confusion / confusion.sum(1, keepdim=True).clamp_min(1)
    classes = [row["class"] for row in results["per_class"]]
    side = min(4 + 0.35 * len(classes), 14)
    figure, axis = plt.subplots(figsize=(side, side))
    image = axis.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    if len(classes) <= MAX_LABELLED_CLASSES:
        axis.set_xticks(range(len(classes)), classes, rotation=90)
        axis.set_yticks(range(len(classes)), classes)
        if len(classes) <= 12:
            for (row, column), value in zip(torch.cartesian_prod(torch.arange(len(classes)),
                                                                 torch.arange(len(classes))).tolist(),
                                            confusion.flatten().tolist()):
                if value:
                    axis.text(column, row, int(value), ha="center", va="center", fontsize=7,
                              color="white" if rates[row, column] > 0.5 else "black")
    axis.set(xlabel="predicted", ylabel="true", title=f"confusion (top-1 {results['top1']:.2f}%)")
    figure.colorbar(image, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
