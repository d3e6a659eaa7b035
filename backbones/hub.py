"""Downloading pretrained weights once into the torch.hub / huggingface_hub caches, checked against their digests."""
import hashlib
import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path

import torch

from .weights.errors import CheckpointError

HF_FILENAME = "model.safetensors"
# torch.hub's convention: a file name's stem ends in `-` and the first hex digits of the file's sha256
NAME_DIGEST = re.compile(r"-([0-9a-f]{8,})$")
SHA256 = re.compile(r"[0-9a-f]{64}")


class WeightsDownloadError(CheckpointError):
    """A downloaded weights file is not the one its URL or config names: its sha256 differs from the expected."""


def weights_url(cfg: dict) -> str:
    """The address of the weights file a pretrained config points at."""
    if cfg.get("hf_hub_id"):
        return f"https://huggingface.co/{cfg['hf_hub_id']}/resolve/main/{HF_FILENAME}"
    return cfg["url"]


def expected_sha256(cfg: dict) -> str:
    """The sha256, or its first hex digits, that the file at `cfg["url"]` must have; "" when nothing names one.

    A config's full `sha256` comes first; otherwise the digits after the last `-` of the file name's stem, 8 or more
    (torch.hub's convention: torchvision's `resnet50-0676ba61.pth`, akamaster's `resnet20-12fca82f.th`). detectron2's
    names (`R-50.pkl`, `X-101-32x8d.pkl`, `model_final_f10217.pkl`) carry no sha256.

    Raises:
        ValueError: the config's `sha256` is not 64 hex digits.
    """
    if cfg.get("sha256"):
        digest = cfg["sha256"].lower()
        if not SHA256.fullmatch(digest):
            raise ValueError(f"the sha256 given for {cfg['url']} must be 64 hex digits, got {cfg['sha256']!r}")
        return digest
    match = NAME_DIGEST.search(cfg["url"].rsplit("/", 1)[-1].split(".", 1)[0])
    return match.group(1) if match else ""


def expected_digests(cfg: dict) -> dict[str, str]:
    """{algorithm: expected hex digest or its first digits} of the file at `cfg["url"]`: its sha256
    (`expected_sha256`) and, where the config gives one, the md5 prefix that detectron2's model-zoo names carry
    (`model_final_f10217.pkl`)."""
    digests = {"sha256": expected_sha256(cfg), "md5": cfg.get("md5", "").lower()}
    return {algorithm: digest for algorithm, digest in digests.items() if digest}


def digest_of(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The digest of the file at `path` (sha256 unless `algorithm` says otherwise), in hex."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, algorithm).hexdigest()


@contextmanager
def _download_failure(name: str, cfg: dict, local_file: str | None):
    """Turns any failure of the download inside into an error that names the URL and how to pass a local file."""
    url = weights_url(cfg)
    try:
        yield
    except Exception as error:
        filename = url.rsplit("/", 1)[-1]
        local = local_file or f"create_backbone({name!r}, pretrained='/path/to/{{filename}}')"
        raise RuntimeError(f"could not download the weights of {name} from {url}: {error}. Without network, fetch "
                           f"the file elsewhere and pass its path: {local.format(filename=filename)}") from error


def download_weights(name: str, cfg: dict, local_file: str | None = None) -> str:
    """Returns the local path of the weights that `cfg` points at, downloading them on first use.

    `cfg` needs a `url`, or an `hf_hub_id` (huggingface_hub downloads and verifies those files itself), and may
    carry a full `sha256`. A URL's file lands in `torch.hub.get_dir()/checkpoints/` under its own name: it is
    downloaded to a temporary file there, its digests compared with `expected_digests(cfg)`, and only then renamed
    into place. Without an expected digest (detectron2's ImageNet URLs, unless the config gives `sha256`) nothing is
    checked.
    A file already in the cache is used as it is, unchecked, as torch.hub does.

    Args:
        name: What the weights are for, as the messages name them (`resnet50.tv2_in1k`).
        cfg: The pretrained config: `url` or `hf_hub_id`, optionally `sha256` and `md5` (a prefix).
        local_file: how the failure message says to pass a local copy instead (`{filename}` is the file's name);
            by default `create_backbone(name, pretrained=...)`.

    Raises:
        RuntimeError: the download failed; the message names the URL and how to pass a local file instead.
        WeightsDownloadError: the downloaded file's sha256 differs from the expected; the message names the URL and
            both digests, and nothing is left in the cache (a ValueError).
    """
    if cfg.get("hf_hub_id"):
        with _download_failure(name, cfg, local_file):
            from huggingface_hub import hf_hub_download

            return hf_hub_download(cfg["hf_hub_id"], HF_FILENAME)
    destination = Path(torch.hub.get_dir()) / "checkpoints" / cfg["url"].rsplit("/", 1)[-1]
    if destination.exists():
        return str(destination)
    expected = expected_digests(cfg)
    partial = destination.with_name(f"{destination.name}.{uuid.uuid4().hex}.partial")
    try:
        with _download_failure(name, cfg, local_file):
            destination.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(cfg["url"], str(partial), progress=True)
        for algorithm, digest in expected.items():
            found = digest_of(partial, algorithm)
            if not found.startswith(digest):
                source = f"the config's {algorithm}" if cfg.get(algorithm) else f"the {algorithm} prefix in its name"
                raise WeightsDownloadError(
                    f"the weights of {name} downloaded from {cfg['url']} have {algorithm} {found}, but {source} is "
                    f"{digest}: the file is corrupt or not the one named; it was deleted and nothing was cached")
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return str(destination)
