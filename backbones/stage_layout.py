"""Where each stage of a ResNet strides or dilates for a wanted output stride: the one rule that the post- and
pre-activation nets share (torchvision's `replace_stride_with_dilation`, detectron2's DC5)."""
OUTPUT_STRIDES = (8, 16, 32)
STEMS = ("imagenet", "cifar")


def checked_output_stride(output_stride: int | None, num_stages: int, stem: str) -> int:
    """The output stride to build: `output_stride`, or the natural one when None; raises ValueError for others."""
    if stem not in STEMS:
        raise ValueError(f"stem={stem!r} is not supported; choose 'imagenet' or 'cifar'")
    natural = 2 ** (num_stages - 1) * (4 if stem == "imagenet" else 1)
    if output_stride is None or output_stride == natural:
        return natural
    valid = OUTPUT_STRIDES if stem == "imagenet" else (natural,)
    if output_stride not in valid:
        raise ValueError(f"output_stride={output_stride!r} is not supported here; choose one of {valid}")
    return output_stride


def stage_layout(num_stages: int, stem: str, output_stride: int | None) -> list[dict[str, int]]:
    """Per stage: `stride` of its first block, `first_dilation` of that block's 3x3, `dilation` of the other 3x3s,
    and the `reduction` of its output. Stages past the output stride dilate instead of striding."""
    output_stride = checked_output_stride(output_stride, num_stages, stem)
    reduction, dilation = (4 if stem == "imagenet" else 1), 1
    layout = []
    for index in range(1, num_stages + 1):
        stride, first_dilation = (1 if index == 1 else 2), dilation
        if index > 1 and reduction >= output_stride:
            dilation, stride = dilation * stride, 1
        reduction *= stride
        layout.append(dict(stride=stride, first_dilation=first_dilation, dilation=dilation, reduction=reduction))
    return layout
