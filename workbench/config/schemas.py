"""The config schemas of detection and classification: every key, and its default, in one place.

A key absent from a schema is an error (see `loader.check_keys`); a key that was renamed names its new name.

data.batch_size is the total batch of one iteration (one optimizer step) over all processes, as detectron2's
IMS_PER_BATCH: each of N processes takes batch_size / N images, in solver.accumulate micro-batches of
batch_size / (N * accumulate) (accumulation saves memory, the recipe stays the same); see `engine.recipe`.
solver.weight_decay_norm / weight_decay_bias: the weight decay of norm layers / of the other biases (timm's
exclusion of both by default; null: solver.weight_decay, as detectron2's and torchvision's detection recipes decay
them).
solver.reference_batch_size: null, or the total batch the recipe's lr and iteration counts are meant for; a run with
another data.batch_size scales lr linearly and iterations, steps, warm-up and periods inversely.
"""
SOLVER_DEFAULTS = {
    "lr": 0.02, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4, "weight_decay_norm": 0.0,
    "weight_decay_bias": 0.0,
    "max_iter": 90000, "schedule": "multistep", "steps": [60000, 80000], "gamma": 0.1, "warmup_iters": 1000,
    "warmup_factor": 0.001, "warmup_method": "linear", "clip_grad_norm": None, "amp": False, "accumulate": 1,
    "sync_bn": False, "on_nonfinite": "stop", "reference_batch_size": None,
}

# grad_checkpointing: recompute the backbone's activations in the backward pass (less memory, one more forward of
# the backbone per step);
# checkpoints_kept: how many of the newest periodic checkpoints stay on disk (0: all)
TRAIN_MEMORY_DEFAULTS = {"grad_checkpointing": False, "checkpoints_kept": 0}

DETECTION_DEFAULTS = {
    "model": {
        "kind": "mask_rcnn", "backbone": "resnet50", "neck": "fpn", "num_classes": 81, "backbone_weights": None,
        # weights: a whole detector's checkpoint file, or a name of heads.list_detector_weights(), which then sets
        # kind, backbone, neck, num_classes and labels_are_category_ids; weights_file: a local copy of named weights
        "weights": None, "weights_file": None, "options": {},
        # true: output label k is COCO category id k, as in torchvision's COCO checkpoints (91 outputs); false: the
        # annotation file's categories in id order are labels 1..K
        "labels_are_category_ids": False,
    },
    "data": {
        "dataset": "coco", "root": "data/coco", "train_images": "train2017",
        "train_annotations": "annotations/instances_train2017.json", "val_images": "val2017",
        "val_annotations": "annotations/instances_val2017.json",
        "shapes": {"num_train": 1000, "num_val": 200, "seed": 0, "size": 128, "max_objects": 4},
        "skip_empty": True, "batch_size": 2, "workers": 2, "group_by_aspect_ratio": True, "unreadable_images": "skip",
        "augment": {"hflip_prob": 0.5, "scales": None, "max_size": None, "lsj": None, "photometric": False},
    },
    "solver": dict(SOLVER_DEFAULTS),
    "train": {
        "output_dir": "output/det", "seed": 42, "log_period": 20, "checkpoint_period": 5000, "eval_period": 0,
        "device": "auto", **TRAIN_MEMORY_DEFAULTS,
    },
    # eval.batch_size: images the loader reads at a time; the model sees one at a time, so it does not change the AP
    "eval": {"iou_types": None, "backend": "pycocotools", "batch_size": 2, "workers": None, "draw_images": 8,
             "score_threshold": 0.5},
}

CLASSIFICATION_DEFAULTS = {
    "model": {"backbone": "resnet18", "num_classes": 10, "backbone_weights": None, "options": {}},
    "data": {
        "dataset": "shapes", "root": "output/shapes_cls", "train_dir": "train", "val_dir": "val", "download": True,
        "holdout": 0, "seed": 0,
        "shapes": {"num_train": 10000, "num_val": 2000, "size": 32, "seed": 0, "background": "textured",
                   "extent": [0.4, 0.9]},
        "batch_size": 128, "workers": 2,
        "augment": {"kind": "pad_crop", "crop": 32, "padding": 4, "scale_range": [256, 480], "hflip": True},
        # mean / std: null takes the backbone's pretrained_cfg; set, they replace it in the units and channel order
        # the transforms feed: pixels in 0-1, RGB, or BGR for BGR weights (the images are flipped before normalising),
        # e.g. [0.406, 0.456, 0.485] for resnet50.msra_in1k
        "mean": None, "std": None, "eval_resize": None, "eval_crop": None, "unreadable_images": "skip",
    },
    # warmup_until_error: null, or the training error (%) above which the learning rate is lr * warmup_factor (the
    # paper's ResNet-110 on CIFAR: 80, with warmup_factor 0.1); see engine.solver.ErrorWarmup
    "solver": dict(SOLVER_DEFAULTS, lr=0.1, max_iter=64000, steps=[32000, 48000], warmup_iters=0,
                   warmup_until_error=None),
    "train": {"output_dir": "output/cls", "seed": 42, "log_period": 20, "checkpoint_period": 5000, "eval_period": 0,
              "device": "auto", **TRAIN_MEMORY_DEFAULTS},
    "eval": {"batch_size": 256, "workers": None},
}

RENAMED_KEYS = {  # old key: new key; the same idea has one key in detection and classification
    "model.name": "model.backbone",
    "model.pretrained": "model.backbone_weights",
    "model.norm": "model.options.norm",
    "model.frozen_stages": "model.options.frozen_stages",
}

SCHEMAS = {"detection": DETECTION_DEFAULTS, "classification": CLASSIFICATION_DEFAULTS}
KIND_TOOLS = {"detection": "tools/train_det.py or tools/eval_det.py",
              "classification": "tools/train_cls.py or tools/eval_cls.py"}
