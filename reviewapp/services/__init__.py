"""State transitions of the review workflow, one module per topic, functions named <entity>_<verb>."""
