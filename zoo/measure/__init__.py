"""Stage 3, measure: datasets, preprocessing, runtimes, and the measurements (accuracy, latency, complexity)
on this host or on a target board."""
