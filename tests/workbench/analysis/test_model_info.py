"""Multiply-adds counted by torch.utils.flop_counter against the paper's Table 1 and torchvision's model tables."""
import pytest

from workbench.analysis import model_info

TABLE_1 = [  # (model, options, GMACs at 224 px)
    ("resnet18", {}, 1.8), ("resnet34", {}, 3.6),
    ("resnet50", {"style": "caffe"}, 3.8), ("resnet101", {"style": "caffe"}, 7.6),
    ("resnet152", {"style": "caffe"}, 11.3),
    ("resnet50", {}, 4.09), ("resnet101", {}, 7.80), ("resnet152", {}, 11.51),  # torchvision's published numbers
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


def test_cli_prints_a_row_per_matching_model_and_its_stages(capsys, tool_args):
    args = ["resnet1[05]*", "plain18", "--size", "64", "--per-stage"]
    rows = model_info.print_model_facts(tool_args("model_info", args))
    assert [row["name"] for row in rows] == ["resnet101", "resnet152", "plain18"]
    assert all(list(row["stages"]) == ["conv1", "layer1", "layer2", "layer3", "layer4", "fc"] for row in rows)
    assert all(sum(row["stages"].values()) == row["macs"] for row in rows)
    header, *_, last = capsys.readouterr().out.splitlines()
    assert header.split()[-2:] == ["layer4", "fc"] and "plain18" in last
