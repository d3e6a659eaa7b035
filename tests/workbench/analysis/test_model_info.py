"""Multiply-adds counted by torch.utils.flop_counter against the paper's Table 1 and torchvision's model tables."""
import pytest

from workbench.analysis import model_info

TABLE_1 = [  # (model, options, GMACs at 224 px)
    ("resnet18", {}, 1.8), ("resnet34", {}, 3.6),
    ("resnet50", {"style": "caffe"}, 3.8), ("resnet101", {"style": "caffe"}, 7.6),
    ("resnet152", {"style": "caffe"}, 11.3),
    ("resnet50", {}, 4.09), ("resnet101", {}, 7.80), ("resnet152", {}, 11.51),  # torchvision's published numbers
    ("resnext50_32x4d", {}, 4.23), ("resnext101_32x8d", {}, 16.414), ("resnext101_64x4d", {}, 15.46),
    ("wide_resnet50_2", {}, 11.398), ("wide_resnet101_2", {}, 22.753),
]


@pytest.mark.parametrize("name, options, gmacs", TABLE_1, ids=[f"{n}-{o.get('style', 'pytorch')}" for n, o, _ in
                                                                 TABLE_1])
def test_multiply_adds_match_the_paper(name, options, gmacs):
    facts = model_info.model_facts(name, 224, **options)
    assert facts["macs"] / 1e9 == pytest.approx(gmacs, abs=0.1)


def test_parameters_and_default_input_size():
    assert model_info.model_facts("resnet50")["params"] == 25_557_032
    cifar = model_info.model_facts("resnet20_cifar")
    assert cifar["input_size"] == (3, 32, 32) and cifar["macs"] / 1e6 == pytest.approx(41, abs=1)


def test_prints_a_row_per_matching_model_and_its_stages(capsys):
    rows = model_info.print_model_facts(["resnet1[05]*", "plain18"], size=64, per_stage=True)
    assert [row["name"] for row in rows] == ["resnet101", "resnet152", "plain18"]
    assert all(list(row["stages"]) == ["conv1", "layer1", "layer2", "layer3", "layer4", "fc"] for row in rows)
    assert all(sum(row["stages"].values()) == row["macs"] for row in rows)
    header, *_, last = capsys.readouterr().out.splitlines()
    assert header.split()[-2:] == ["layer4", "fc"] and "plain18" in last


def test_prints_a_row_for_every_resnext_and_wide_resnet(capsys):
    rows = model_info.print_model_facts(["resnext*", "wide_resnet*"], size=64)
    names = ["resnext101_32x4d", "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d", "wide_resnet101_2",
             "wide_resnet50_2"]
    assert [row["name"] for row in rows] == names
    printed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert printed == names


def test_gives_a_row_for_every_preactivation_net(capsys):
    rows = model_info.print_model_facts(["resnetv2_*", "preact_*"])
    names = ["resnetv2_101", "resnetv2_152", "resnetv2_18", "resnetv2_34", "resnetv2_50", "preact_resnet1001_cifar",
             "preact_resnet110_cifar", "preact_resnet164_cifar"]
    assert [row["name"] for row in rows] == names
    facts = {row["name"]: row for row in rows}
    assert facts["resnetv2_50"]["params"] == 25_549_352 and facts["resnetv2_101"]["params"] == 44_541_480
    # timm's model cards: 4.1 and 7.8 GMACs at 224 px
    assert facts["resnetv2_50"]["macs"] / 1e9 == pytest.approx(4.1, abs=0.05)
    assert facts["resnetv2_101"]["macs"] / 1e9 == pytest.approx(7.8, abs=0.05)
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == names
