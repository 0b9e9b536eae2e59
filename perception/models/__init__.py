"""Multi-task detection + segmentation network: backbone, feature pyramid, heads (see multitask.py)."""
