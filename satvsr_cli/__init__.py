"""satvsr: satellite video super-resolution (x4). Importing this package does not import torch."""

__version__ = "0.1.0"
