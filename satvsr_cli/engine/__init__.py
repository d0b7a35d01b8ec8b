"""Streaming inference engine: temporal windows, spatial tiling, precision and device handling."""
