"""The classifier end that the family's models share, as in timm's model contract: global pooling, dropout and a
linear layer (`fc`), replaceable through `reset_classifier`; and the family's weight initialisation."""
import torch
import torch.nn.functional as F
from torch import nn


class ClassifierModel(nn.Module):
    """Base of the ResNets: a subclass builds its layers, sets `num_features` and `drop_rate`, calls
    `reset_classifier` and `_init_weights`, and defines `forward_features`."""

    num_features: int
    drop_rate: float

    def _init_weights(self) -> None:
        """He initialisation of the convolutions (fan-out), unit scale and zero shift of the norms."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def get_classifier(self) -> nn.Module:
        """The final linear layer (nn.Identity when there are no classes)."""
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        """Replaces the classifier by a fresh one with `num_classes` outputs (0: none) after `global_pool` pooling."""
        pools = {"avg": nn.AdaptiveAvgPool2d(1), "max": nn.AdaptiveMaxPool2d(1), "": nn.Identity()}
        if global_pool not in pools:
            raise ValueError(f"global_pool={global_pool!r} is not supported; choose one of 'avg', 'max', ''")
        if num_classes and not global_pool:
            raise ValueError("a classifier needs pooled features: pass global_pool='avg' or 'max' with num_classes > 0")
        self.num_classes = num_classes
        self.global_pool_type = global_pool
        self.global_pool = pools[global_pool]
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pools (unless global_pool="") and classifies; `pre_logits` stops before the classifier."""
        x = self.global_pool(x)
        if self.global_pool_type != "":
            x = torch.flatten(x, 1)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
