"""How inputs must be normalised for a backbone's weights, from its `pretrained_cfg`, for every tool that feeds RGB
pixels in 0-1 (detectors, classifiers, exports)."""
from collections.abc import Mapping

CHANNEL_ORDERS = ("RGB", "BGR")


def unit_range_normalization(pretrained_cfg: Mapping) -> tuple[list[float], list[float], str]:
    """(mean, std, channel_order) that normalise RGB 0-1 pixels as `pretrained_cfg` prescribes: its mean and std,
    given in units of its `pixel_range`, divided by that range (normalising a 0-1 image then equals normalising it
    scaled to the range); BGR weights flip the channels first.

    Raises:
        ValueError: the channel order is neither RGB nor BGR.
    """
    channel_order = pretrained_cfg.get("channel_order", "RGB")
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order={channel_order!r} is not supported; choose one of {CHANNEL_ORDERS}")
    pixel_range = float(pretrained_cfg.get("pixel_range", 1.0))
    return ([float(m) / pixel_range for m in pretrained_cfg["mean"]],
            [float(s) / pixel_range for s in pretrained_cfg["std"]], channel_order)
