"""Small, CPU-fast detector settings and targets shared by the heads tests."""
import pytest
import torch

SIZE = 128
FAST = dict(min_size=SIZE, max_size=SIZE, rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100,
            rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50, rpn_batch_size_per_image=64,
            box_batch_size_per_image=32, box_detections_per_img=20)
FAST_HEADS = {"fpn": dict(fpn_channels=64, representation_size=128), "c4": {}}
FAST_MASK_HEADS = {"fpn": dict(mask_head_channels=32, mask_head_convs=2), "c4": dict(mask_head_channels=32)}


@pytest.fixture
def fast_options():
    """`fast_options(kind, neck)`: keyword arguments for a small detector of that kind and neck."""
    def options(kind: str, neck: str) -> dict:
        mask = FAST_MASK_HEADS[neck] if kind == "mask_rcnn" else {}
        return dict(neck=neck, **FAST, **FAST_HEADS[neck], **mask)
    return options


@pytest.fixture
def targets():
    """`targets(with_masks)`: two images' worth of boxes, labels (and masks) for SIZE x SIZE images."""
    def make(with_masks: bool) -> list[dict]:
        boxes = [torch.tensor([[30.0, 20.0, 90.0, 60.0]]),
                 torch.tensor([[10.0, 40.0, 50.0, 120.0], [60.0, 60.0, 120.0, 100.0]])]
        labels = [torch.tensor([1]), torch.tensor([2, 1])]
        result = []
        for box, label in zip(boxes, labels):
            target = dict(boxes=box, labels=label)
            if with_masks:
                masks = torch.zeros(len(box), SIZE, SIZE, dtype=torch.uint8)
                for mask, (x1, y1, x2, y2) in zip(masks, box.int().tolist()):
                    mask[y1:y2, x1:x2] = 1
                target["masks"] = masks
            result.append(target)
        return result
    return make
