"""The keys of detectors (necks, RPN, RoI heads) and of mm* models that are no part of a backbone: the format
renamers drop them."""

# Parts of detectors and of mm* models that are no part of a backbone.
HEAD_PREFIXES = (
    "backbone.fpn", "backbone.top_block.", "proposal_generator.", "roi_heads.", "rpn.", "pixel_mean", "pixel_std",
    "neck.", "rpn_head.", "roi_head.", "data_preprocessor.",
)
