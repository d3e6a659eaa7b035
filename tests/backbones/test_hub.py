"""Downloads of pretrained weights: checked against the sha256 that their file name or config carries, cached once."""
import hashlib
from pathlib import Path

import pytest
import torch

import backbones
from backbones.hub import download_weights, expected_sha256
from backbones.pretrained import PRETRAINED_CFGS


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """torch.hub's checkpoint folder, moved into a temporary folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    assert folder.is_relative_to(tmp_path), "torch.hub.set_dir() was called elsewhere: TORCH_HOME is ignored"
    return folder


def save(path: Path, state_dict: dict) -> str:
    """Saves `state_dict` at `path`; returns its sha256."""
    torch.save(state_dict, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def serve(server: Path, stem: str, state_dict: dict) -> tuple[Path, str]:
    """Saves `state_dict` in `server` as `<stem>-<first 8 hex digits of its sha256>.pth`; returns the file and its
    sha256."""
    digest = save(server / "weights", state_dict)
    return (server / "weights").rename(server / f"{stem}-{digest[:8]}.pth"), digest


@pytest.mark.parametrize("file, digest", [
    ("resnet50-0676ba61.pth", "0676ba61"), ("resnet20-12fca82f.th", "12fca82f"),
    ("maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth", "bf2d0c1e"), ("R-50.pkl", ""), ("X-101-32x8d.pkl", ""),
    ("model_final_f10217.pkl", ""), ("resnet50-0676ba6.pth", ""), ("resnet50-0676ba61x.pth", ""),
])
def test_the_expected_digest_is_torch_hubs_prefix_in_the_file_name(file, digest):
    assert expected_sha256({"url": f"https://example.org/a-b.c/{file}"}) == digest


def test_a_configs_sha256_comes_first_and_must_be_64_hex_digits():
    full = "ab" * 32
    assert expected_sha256({"url": "https://example.org/resnet50-0676ba61.pth", "sha256": full.upper()}) == full
    with pytest.raises(ValueError, match=r"R-50.pkl must be 64 hex digits, got 'abcd'"):
        expected_sha256({"url": "https://example.org/R-50.pkl", "sha256": "abcd"})


def test_every_torchvision_and_akamaster_file_name_carries_its_digest():
    cfgs = [cfg for tags in PRETRAINED_CFGS.values() for cfg in tags.values()]
    named = [cfg["url"] for cfg in cfgs if cfg["source"] in ("torchvision", "akamaster/pytorch_resnet_cifar10")]
    assert named and all(expected_sha256({"url": url}) for url in named)


def test_good_weights_download_once_and_load(cache, tmp_path, monkeypatch):
    weights = backbones.create_backbone("resnet20_cifar", shortcut_pad="center").state_dict()
    file, _ = serve(tmp_path, "resnet20", weights)
    monkeypatch.setitem(PRETRAINED_CFGS["resnet20_cifar"]["akamaster_cifar10"], "url", file.as_uri())
    model = backbones.create_backbone("resnet20_cifar.akamaster_cifar10", pretrained=True)
    assert all(torch.equal(value, weights[key]) for key, value in model.state_dict().items())
    assert [path.name for path in cache.iterdir()] == [file.name]
    file.unlink()  # the cached file serves the second call
    model = backbones.create_backbone("resnet20_cifar.akamaster_cifar10", pretrained=True)
    assert all(torch.equal(value, weights[key]) for key, value in model.state_dict().items())


def test_a_corrupt_download_is_refused_and_leaves_nothing_in_the_cache(cache, tmp_path):
    file, digest = serve(tmp_path, "tiny", {"weight": torch.arange(4.0)})
    found = save(file, {"weight": torch.ones(4)})
    for _ in range(2):  # nothing was cached: the second call downloads and refuses again
        with pytest.raises(backbones.WeightsDownloadError) as error:
            download_weights("tiny.test", {"url": file.as_uri()})
        assert isinstance(error.value, ValueError)
        assert (f"the weights of tiny.test downloaded from {file.as_uri()} have sha256 {found}, but the sha256 prefix "
                f"in its name is {digest[:8]}") in str(error.value)
        assert list(cache.iterdir()) == []


def test_a_configs_full_sha256_is_checked(cache, tmp_path):
    file = tmp_path / "R-50.pth"
    digest = save(file, {"weight": torch.arange(4.0)})
    wrong = hashlib.sha256(b"other weights").hexdigest()
    refused = f"have sha256 {digest}, but the config's sha256 is {wrong}"
    with pytest.raises(backbones.WeightsDownloadError, match=refused):
        download_weights("tiny.test", {"url": file.as_uri(), "sha256": wrong})
    assert list(cache.iterdir()) == []
    path = download_weights("tiny.test", {"url": file.as_uri(), "sha256": digest})
    assert Path(path) == cache / "R-50.pth" and torch.equal(torch.load(path)["weight"], torch.arange(4.0))


def test_a_configs_md5_prefix_is_checked_as_detectron2s_names_carry_it(cache, tmp_path):
    file = tmp_path / "model_final.pkl"
    save(file, {"weight": torch.arange(4.0)})
    md5 = hashlib.md5(file.read_bytes()).hexdigest()
    with pytest.raises(backbones.WeightsDownloadError, match=f"have md5 {md5}, but the config's md5 is 000000"):
        download_weights("tiny.test", {"url": file.as_uri(), "md5": "000000"})
    assert list(cache.iterdir()) == []
    assert Path(download_weights("tiny.test", {"url": file.as_uri(), "md5": md5[:6]})) == cache / "model_final.pkl"


def test_a_url_without_a_digest_downloads_unchecked(cache, tmp_path):
    file = tmp_path / "model_final_f10217.pth"
    save(file, {"weight": torch.arange(4.0)})
    path = download_weights("tiny.test", {"url": file.as_uri()})
    assert Path(path) == cache / file.name and Path(path).read_bytes() == file.read_bytes()
