"""Downloading pretrained weights once into the torch.hub / huggingface_hub caches."""
from pathlib import Path

import torch

HF_FILENAME = "model.safetensors"


def weights_url(cfg: dict) -> str:
    """The address of the weights file a pretrained config points at."""
    if cfg["hf_hub_id"]:
        return f"https://huggingface.co/{cfg['hf_hub_id']}/resolve/main/{HF_FILENAME}"
    return cfg["url"]


def _fetch(cfg: dict) -> str:
    if cfg["hf_hub_id"]:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(cfg["hf_hub_id"], HF_FILENAME)
    destination = Path(torch.hub.get_dir()) / "checkpoints" / cfg["url"].rsplit("/", 1)[-1]
    if not destination.exists():
        destination.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(cfg["url"], str(destination), progress=True)
    return str(destination)


def download_weights(name: str, cfg: dict) -> str:
    """Returns the local path of the weights that `cfg` points at, downloading them on first use.

    Raises:
        RuntimeError: the download failed; the message names the URL and how to pass a local file instead.
    """
    url = weights_url(cfg)
    try:
        return _fetch(cfg)
    except Exception as error:
        filename = url.rsplit("/", 1)[-1]
        raise RuntimeError(
            f"could not download the weights of {name} from {url}: {error}. Without network, fetch the file "
            f"elsewhere and pass its path: create_backbone({name!r}, pretrained='/path/to/{filename}')"
        ) from error
