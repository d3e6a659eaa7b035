"""The CIFAR ResNets of akamaster/pytorch_resnet_cifar10: option A with the zero channels on both sides of the
identity (`shortcut_pad="center"`), classifier `linear`, saved from DataParallel in torch's legacy non-zip format."""
import zipfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import backbones
from backbones.weights import CheckpointMismatchError, convert_state_dict, load_weights, read_checkpoint
from backbones.pretrained import IMAGENET_MEAN, IMAGENET_STD
from workbench.benchmarks.backbone import randomise_statistics

TAGGED = "resnet20_cifar.akamaster_cifar10"


class ReferenceBlock(nn.Module):
    """Their BasicBlock with option A: the subsampled identity gets planes // 4 zero channels on each side."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pads_identity = stride != 1 or in_planes != planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        pad = out.shape[1] // 4
        shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad)) if self.pads_identity else x
        return F.relu(out + shortcut)


class ReferenceResNet(nn.Module):
    """Their ResNet-(6n+2): 3x3 stem, stages of 16, 32, 64 planes, global average pool, `linear`."""

    def __init__(self, n: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for index, planes in enumerate((16, 32, 64), start=1):
            blocks = [ReferenceBlock(in_planes if b == 0 else planes, planes, 2 if index > 1 and b == 0 else 1)
                      for b in range(n)]
            in_planes = planes
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, 10)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.forward_features(x)
        return self.linear(F.avg_pool2d(out, out.shape[3]).flatten(1))


def randomised(model: nn.Module) -> nn.Module:
    """Random BatchNorm weights and statistics, so that a loader dropping any of them is caught; in eval mode."""
    randomise_statistics(model)
    return model.eval()


def images() -> torch.Tensor:
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def reference() -> ReferenceResNet:
    torch.manual_seed(0)
    return randomised(ReferenceResNet(3))


@pytest.fixture(scope="module")
def checkpoint(reference, tmp_path_factory) -> str:
    """The reference saved as their trainer.py saves it."""
    path = str(tmp_path_factory.mktemp("akamaster") / "resnet20-0123abcd.th")
    state_dict = {"module." + k: v for k, v in reference.state_dict().items()}
    torch.save({"state_dict": state_dict, "best_prec1": 91.73}, path, _use_new_zipfile_serialization=False)
    return path


def test_the_file_is_read_in_the_legacy_format_and_renamed(checkpoint):
    assert not zipfile.is_zipfile(checkpoint)
    state_dict, format_name = convert_state_dict(read_checkpoint(checkpoint))
    assert format_name == "akamaster"
    assert "fc.weight" in state_dict and not any(k.startswith(("linear.", "module.")) for k in state_dict)


@pytest.mark.parametrize("name, options", [(TAGGED, {}), ("resnet20_cifar", {"shortcut_pad": "center"})])
def test_tag_or_centered_padding_gives_the_reference_logits(name, options, reference, checkpoint):
    model = backbones.create_backbone(name, pretrained=checkpoint, **options).eval()
    with torch.no_grad():
        want, got = reference(images()), model(images())
    assert max_diff(got, want) <= 1e-5  # avg_pool2d and AdaptiveAvgPool2d sum in another order


@pytest.mark.parametrize("fused", [True, False])
def test_features_only_gives_the_reference_maps(fused, reference, checkpoint):
    model = backbones.create_backbone(TAGGED, pretrained=checkpoint, features_only=True).eval().set_fused(fused)
    with torch.no_grad():
        want, got = reference.forward_features(images()), model(images())[-1]
    assert max_diff(got, want) <= 1e-5 * want.abs().max().item()


@pytest.mark.parametrize("shortcut_pad", ["append", "center"])
def test_features_only_equals_the_plain_forward(shortcut_pad):
    model = randomised(backbones.create_backbone("resnet20_cifar", shortcut_pad=shortcut_pad))
    features = backbones.FeatureExtractor(model, range(4))
    with torch.no_grad():
        want = model.forward_features(images())
        fused, unfused = features(images())[-1], features.set_fused(False)(images())[-1]
    assert max_diff(fused, want) <= 1e-5 * want.abs().max().item()
    assert torch.equal(unfused, want)


def test_placements_differ_and_script():
    x = torch.randn(1, 16, 8, 8)
    appended, centered = (backbones.blocks.ZeroPadShortcut(2, 16, p) for p in ("append", "center"))
    assert torch.equal(appended(x)[:, :16], x[:, :, ::2, ::2]) and not appended(x)[:, 16:].any()
    assert torch.equal(centered(x)[:, 8:24], x[:, :, ::2, ::2]) and not centered(x)[:, :8].any()
    assert torch.equal(torch.jit.script(centered)(x), centered(x))


def test_tag_config_sets_the_placement_and_their_normalisation():
    cfg = backbones.create_backbone(TAGGED).pretrained_cfg
    assert cfg["shortcut_pad"] == "center" and cfg["file_format"] == "akamaster" and cfg["top1"] == 91.73
    assert cfg["mean"] == IMAGENET_MEAN and cfg["std"] == IMAGENET_STD  # their trainer.py normalises so
    assert cfg["url"].endswith("/pretrained_models/resnet20-12fca82f.th")
    assert backbones.create_backbone("resnet20_cifar").pretrained_cfg["shortcut_pad"] == "append"


@pytest.mark.parametrize("strict", [True, False])
def test_default_placement_refuses_the_file_and_names_the_tag(strict, checkpoint):
    model = backbones.create_backbone("resnet20_cifar")
    with pytest.raises(CheckpointMismatchError) as error:
        load_weights(model, checkpoint, strict=strict)
    assert checkpoint in str(error.value) and f"'{TAGGED}'" in str(error.value)
    assert "shortcut_pad='center'" in str(error.value)


def test_default_name_has_no_default_weights_and_names_the_tag():
    with pytest.raises(ValueError, match=TAGGED):
        backbones.create_backbone("resnet20_cifar", pretrained=True)
