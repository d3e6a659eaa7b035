"""torchvision's fasterrcnn/maskrcnn_resnet50_fpn state dicts load as they are and give the same detections."""
import pytest
import torch
import torchvision

import backbones
import heads
from workbench.benchmarks.detector_inference import randomise_batchnorm, realistic_predictors

# fast_inference folds BatchNorm and reorders sums: boxes move by float rounding, amplified by box decoding;
# without it the detections are torchvision's bit for bit
TOLERANCES = {False: dict(rtol=0, atol=0), True: dict(rtol=1e-4, atol=2e-3)}


@pytest.mark.parametrize("fast_inference", [False, True])
@pytest.mark.parametrize("kind", ["faster_rcnn", "mask_rcnn"])
def test_torchvision_checkpoint_gives_the_same_detections(kind, fast_inference, tmp_path):
    torch.manual_seed(0)
    settings = dict(min_size=128, max_size=128, box_score_thresh=0.0, box_detections_per_img=20)
    builder = getattr(torchvision.models.detection, kind.replace("_", "") + "_resnet50_fpn")
    reference = builder(weights=None, weights_backbone=None, num_classes=91, **settings)
    randomise_batchnorm(reference)
    realistic_predictors(reference)
    path = tmp_path / f"{kind}.pth"
    torch.save(reference.state_dict(), path)
    # torchvision runs pretrained detectors with frozen BN, as ours does by default over loaded weights.
    reference = backbones.freeze_batchnorm(reference).eval()
    model = heads.build_detector(kind, backbone="resnet50", num_classes=91, weights=path,
                                  fast_inference=fast_inference, **settings).eval()
    assert model.state_dict().keys() == reference.state_dict().keys()

    images = [torch.rand(3, 128, 160), torch.rand(3, 96, 128)]
    with torch.no_grad():
        expected, actual = reference(images), model(images)
    for want, got in zip(expected, actual):
        assert set(got) == set(want)
        assert len(got["scores"]) > 0
        for key in want:
            torch.testing.assert_close(got[key], want[key], **TOLERANCES[fast_inference])
