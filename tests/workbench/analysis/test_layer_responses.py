"""Fig. 7's measurement: which layers are hooked, the std of their responses, and the command line on a checkpoint."""
import pytest
import torch

import backbones
from workbench.analysis import layer_responses
from workbench.config.loader import load_config
from workbench.config.schemas import CLASSIFICATION_DEFAULTS
from workbench.tasks.classification_model import build_classifier


@pytest.mark.parametrize("name, expected", [("resnet20_cifar", 18), ("plain20_cifar", 18), ("resnet50", 16),
                                            ("resnet18", 16)])
def test_every_3x3_layer_of_the_blocks_is_found_in_order(name, expected):
    names = [n for n, _ in layer_responses.three_by_three_norms(backbones.create_backbone(name))]
    assert len(names) == expected
    if name.endswith("cifar"):  # both convs of each basic block, not the stem
        assert names[:3] == ["layer1.0.bn1", "layer1.0.bn2", "layer1.1.bn1"] and names[-1] == "layer3.2.bn2"
    if name == "resnet50":  # the middle conv of each bottleneck
        assert names[0] == "layer1.0.bn2" and names[-1] == "layer4.2.bn2"


def test_bottleneck_net_gives_one_std_per_block():
    stds = layer_responses.response_stds(backbones.create_backbone("resnet50"), [torch.randn(1, 3, 32, 32)],
                                         torch.device("cpu"))
    assert len(stds) == 16 and all(std > 0 for _, std in stds)


def test_std_matches_a_direct_computation():
    torch.manual_seed(0)
    model = backbones.create_backbone("plain20_cifar").train()
    batches = [torch.randn(4, 3, 16, 16), (torch.randn(3, 3, 16, 16), torch.zeros(3))]  # tensors or (images, labels)
    stds = dict(layer_responses.response_stds(model, batches, torch.device("cpu")))
    assert not model.training
    captured = []
    # the block's ReLU works in place: copy the response before it
    handle = model.layer2[1].bn2.register_forward_hook(lambda m, i, o: captured.append(o.flatten().clone()))
    with torch.no_grad():
        model(batches[0])
        model(batches[1][0])
    handle.remove()
    assert stds["layer2.1.bn2"] == pytest.approx(torch.cat(captured).double().std().item(), rel=1e-6)


def test_no_images_is_an_error():
    with pytest.raises(ValueError, match="no images"):
        layer_responses.response_stds(backbones.create_backbone("resnet20_cifar"), [], torch.device("cpu"))


def test_checkpoints_draw_fig7(tmp_path, tiny_shapes_cls, capsys):
    config = load_config(CLASSIFICATION_DEFAULTS, None, [f"data.root={tiny_shapes_cls}",
                                                         "model.backbone=resnet20_cifar", "data.eval_crop=16"])
    torch.save({"model": build_classifier(config["model"]).state_dict(), "config": config}, tmp_path / "model.pth")
    checkpoint = str(tmp_path / "model.pth")
    curves = layer_responses.plot_layer_responses([checkpoint, checkpoint], tmp_path / "fig7.png", labels=["a", "b"],
                                                  num_images=6, batch_size=4)
    assert list(curves) == ["a", "b"] and len(curves["a"]) == 18 and curves["a"] == curves["b"]
    output = capsys.readouterr().out
    assert (tmp_path / "fig7.png").is_file() and "mean std" in output and "a  " in output
