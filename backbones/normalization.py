"""How inputs must be normalised for a backbone's weights, from its `pretrained_cfg`, for every tool that feeds RGB
pixels in 0-1 (detectors, classifiers, exports)."""
from collections.abc import Mapping

CHANNEL_ORDERS = ("RGB", "BGR")


def in_unit_range(cfg: Mapping) -> dict:
    """`cfg` with `mean` and `std` in 0-1 units. Configs saved before they were (in our checkpoints'
    `conventions` and exported files' metadata) gave them in units of `pixel_range`: a mean above 1, which no mean
    of 0-1 pixels can be, is divided by that range, and so is the std."""
    pixel_range = float(cfg.get("pixel_range", 1.0))
    if pixel_range == 1.0 or "mean" not in cfg or max(float(m) for m in cfg["mean"]) <= 1.0:
        return dict(cfg)
    return dict(cfg, mean=[float(m) / pixel_range for m in cfg["mean"]],
                std=[float(s) / pixel_range for s in cfg["std"]])


def unit_range_normalization(pretrained_cfg: Mapping) -> tuple[list[float], list[float], str]:
    """(mean, std, channel_order) that normalise RGB 0-1 pixels as `pretrained_cfg` prescribes: its mean and std
    (0-1 units, see `in_unit_range`), after flipping the channels for BGR weights.

    Raises:
        ValueError: the channel order is neither RGB nor BGR.
    """
    channel_order = pretrained_cfg.get("channel_order", "RGB")
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order={channel_order!r} is not supported; choose one of {CHANNEL_ORDERS}")
    cfg = in_unit_range(pretrained_cfg)
    return [float(m) for m in cfg["mean"]], [float(s) for s in cfg["std"]], channel_order
