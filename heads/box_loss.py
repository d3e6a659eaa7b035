"""Box regression losses of any smooth-L1 beta, for the recipes that torchvision's fixed 1/9 does not train.

torchvision's RPN and RoI heads regress boxes with a smooth L1 of beta 1/9; detectron2's defaults use beta 0, which
is the L1 loss (`MODEL.RPN.SMOOTH_L1_BETA`, `MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA`). `set_box_loss_betas` gives a
detector other betas; at 1/9 it stays torchvision's own modules. Both losses keep torchvision's normalisation: the
RPN's by the number of sampled anchors, the RoI head's by the number of sampled RoIs.
"""
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_inference, maskrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork

TORCHVISION_BETA = 1 / 9


class SmoothL1RPN(RegionProposalNetwork):
    """torchvision's RegionProposalNetwork whose box loss is a smooth L1 of beta `smooth_l1_beta` (0: L1)."""

    smooth_l1_beta: float = TORCHVISION_BETA

    def compute_loss(self, objectness: Tensor, pred_bbox_deltas: Tensor, labels: list[Tensor],
                     regression_targets: list[Tensor]) -> tuple[Tensor, Tensor]:
        positive, negative = self.fg_bg_sampler(labels)
        positive = torch.where(torch.cat(positive))[0]
        sampled = torch.cat([positive, torch.where(torch.cat(negative))[0]])
        targets = torch.cat(regression_targets)
        box_loss = F.smooth_l1_loss(pred_bbox_deltas[positive], targets[positive], beta=self.smooth_l1_beta,
                                    reduction="sum") / sampled.numel()
        objectness_loss = F.binary_cross_entropy_with_logits(objectness.flatten()[sampled], torch.cat(labels)[sampled])
        return objectness_loss, box_loss


class SmoothL1RoIHeads(RoIHeads):
    """torchvision's box (and mask) RoIHeads whose box loss is a smooth L1 of beta `smooth_l1_beta` (0: L1).

    The forward pass is torchvision's for boxes and masks, written out because its box loss is a module function;
    keypoint heads are not supported.
    """

    smooth_l1_beta: float = TORCHVISION_BETA

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]],
                targets: list[dict[str, Tensor]] | None = None) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        matched_idxs: list[Tensor] = []
        labels: list[Tensor] = []
        regression_targets: list[Tensor] = []
        if self.training:
            if targets is None:
                raise ValueError("targets should not be None in training")
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)

        result: list[dict[str, Tensor]] = []
        losses: dict[str, Tensor] = {}
        if self.training:
            losses = self.box_losses(class_logits, box_regression, labels, regression_targets)
        else:
            boxes, scores, classes = self.postprocess_detections(class_logits, box_regression, proposals, image_shapes)
            for i in range(len(boxes)):
                result.append({"boxes": boxes[i], "labels": classes[i], "scores": scores[i]})

        if self.mask_roi_pool is not None and self.mask_head is not None and self.mask_predictor is not None:
            if self.training:
                positive = [torch.where(image_labels > 0)[0] for image_labels in labels]
                mask_proposals = [boxes[keep] for boxes, keep in zip(proposals, positive)]
                mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, mask_proposals,
                                                                                    image_shapes)))
                assert targets is not None
                losses["loss_mask"] = maskrcnn_loss(mask_logits, mask_proposals, [t["masks"] for t in targets],
                                                    [t["labels"] for t in targets],
                                                    [idxs[keep] for idxs, keep in zip(matched_idxs, positive)])
            else:
                mask_proposals = [r["boxes"] for r in result]
                mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, mask_proposals,
                                                                                    image_shapes)))
                for mask_prob, r in zip(maskrcnn_inference(mask_logits, [r["labels"] for r in result]), result):
                    r["masks"] = mask_prob
        return result, losses

    def box_losses(self, class_logits: Tensor, box_regression: Tensor, labels: list[Tensor],
                   regression_targets: list[Tensor]) -> dict[str, Tensor]:
        """torchvision's classification loss and a smooth L1 of `smooth_l1_beta` on the positive RoIs' deltas for
        their class, divided by the number of sampled RoIs."""
        labels_all = torch.cat(labels)
        positive = torch.where(labels_all > 0)[0]
        deltas = box_regression.reshape(class_logits.shape[0], -1, 4)[positive, labels_all[positive]]
        box_loss = F.smooth_l1_loss(deltas, torch.cat(regression_targets)[positive], beta=self.smooth_l1_beta,
                                    reduction="sum") / labels_all.numel()
        return {"loss_classifier": F.cross_entropy(class_logits, labels_all), "loss_box_reg": box_loss}


def set_box_loss_betas(model: torch.nn.Module, rpn_beta: float = TORCHVISION_BETA,
                       box_beta: float = TORCHVISION_BETA) -> torch.nn.Module:
    """Gives a torchvision detector's RPN and RoI heads the box-loss betas `rpn_beta` and `box_beta`, in place.

    A beta other than torchvision's 1/9 makes the module an `SmoothL1RPN` / `SmoothL1RoIHeads` (same parameters,
    settings and state-dict keys); 1/9 leaves it as it is.
    """
    for name, module_class, beta in (("rpn", SmoothL1RPN, rpn_beta), ("roi_heads", SmoothL1RoIHeads, box_beta)):
        if beta < 0:
            raise ValueError(f"{name} smooth L1 beta={beta} must be 0 (L1) or more")
        if beta != TORCHVISION_BETA:
            module = getattr(model, name)
            module.__class__ = module_class
            module.smooth_l1_beta = float(beta)
    return model
