"""The initial weights of the RoI heads as torchvision or detectron2 draw them.

torchvision leaves the box head's and the box predictor's Linear layers at PyTorch's default and draws the mask
predictor's logits from a fan-out Kaiming normal. detectron2 draws the class scores from N(0, 0.01) and the box deltas
and mask logits from N(0, 0.001) (`FastRCNNOutputLayers`, `MaskRCNNConvUpsampleHead`), and fills the box head's fully
connected layers with `c2_xavier_fill` (a Kaiming uniform of a=1); every bias is 0. The other layers (RPN head, FPN,
mask head convs and deconv) start alike in both.
"""
from torch import nn

HEAD_INITS = ("torchvision", "detectron2")


def init_heads(model: nn.Module, head_init: str) -> nn.Module:
    """Draws the RoI heads' initial weights as `head_init` ("torchvision": as built, or "detectron2") says, in place.

    Raises:
        ValueError: `head_init` is not one of `HEAD_INITS`.
    """
    if head_init not in HEAD_INITS:
        raise ValueError(f"head_init={head_init!r} is not supported; choose one of {', '.join(HEAD_INITS)}")
    if head_init == "torchvision":
        return model
    roi_heads = model.roi_heads
    for layer in roi_heads.box_head.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, a=1)
            nn.init.zeros_(layer.bias)
    predictors = [(roi_heads.box_predictor.cls_score, 0.01), (roi_heads.box_predictor.bbox_pred, 0.001)]
    if roi_heads.mask_predictor is not None:
        predictors.append((roi_heads.mask_predictor.mask_fcn_logits, 0.001))
    for layer, std in predictors:
        nn.init.normal_(layer.weight, std=std)
        nn.init.zeros_(layer.bias)
    return model
