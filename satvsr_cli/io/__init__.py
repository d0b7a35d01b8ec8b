"""Input and output: video, frame folders and GeoTIFF stacks."""
