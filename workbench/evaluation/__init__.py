"""COCO evaluation, detector inference, classifier evaluation and pictures of predictions."""
