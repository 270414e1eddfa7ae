"""Stage 2, artifacts: which artifact runs here, and its verified local model file (download, hashes, pins,
cache, archives, conversion)."""
