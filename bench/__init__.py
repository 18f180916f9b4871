"""occam-bench: how many parameters can a small tabular or omics dataset support."""

__version__ = "0.1.0"
