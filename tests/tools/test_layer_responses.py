"""Fig. 7's measurement: which layers are hooked, and the std of their responses."""
import pytest
import torch

import backbones
import layer_responses
import train_cls


@pytest.mark.parametrize("name, expected", [("resnet20_cifar", 19), ("plain20_cifar", 19), ("resnet50", 16),
                                            ("resnet18", 16)])
def test_every_3x3_layer_is_found_in_order(name, expected):
    names = [n for n, _ in layer_responses.three_by_three_norms(backbones.create_backbone(name))]
    assert len(names) == expected
    if name.endswith("cifar"):  # the 3x3 stem, then both convs of each basic block
        assert names[:3] == ["bn1", "layer1.0.bn1", "layer1.0.bn2"]
    if name == "resnet50":  # the middle conv of each bottleneck
        assert names[0] == "layer1.0.bn2" and names[-1] == "layer4.2.bn2"


def test_std_matches_a_direct_computation():
    torch.manual_seed(0)
    model = backbones.create_backbone("resnet20_cifar").eval()
    batches = [torch.randn(4, 3, 16, 16), torch.randn(3, 3, 16, 16)]
    stds = dict(layer_responses.response_stds(model, batches, torch.device("cpu")))
    captured = []
    handle = model.layer2[1].bn2.register_forward_hook(lambda m, i, o: captured.append(o.flatten()))
    with torch.no_grad():
        for images in batches:
            model(images)
    handle.remove()
    assert stds["layer2.1.bn2"] == pytest.approx(torch.cat(captured).double().std().item(), rel=1e-6)


def test_cli_on_checkpoints_draws_fig7(tmp_path, quick_cls_overrides, capsys):
    output_dir = tmp_path / "run"
    args = train_cls.get_args_parser().parse_args(
        ["--config", "configs/classification/resnet18_shapes_cls.yaml", "--output-dir", str(output_dir),
         "model.name=resnet20_cifar"] + quick_cls_overrides + ["solver.max_iter=1"])
    train_cls.main(args)
    checkpoint = str(output_dir / "model_final.pth")
    curves = layer_responses.main(layer_responses.get_args_parser().parse_args(
        [checkpoint, checkpoint, "--labels", "a", "b", "--num-images", "8", "--out", str(tmp_path / "fig7.png")]))
    assert list(curves) == ["a", "b"] and len(curves["a"]) == 19 and curves["a"] == curves["b"]
    assert (tmp_path / "fig7.png").is_file() and "mean std" in capsys.readouterr().out
