"""Datasets, transforms and batching for detection and classification, and the synthetic shapes generators."""
