"""mtqa: multi-task quality assessment (defect presence, segmentation and grade in one network)."""

__version__ = "0.1.0"
