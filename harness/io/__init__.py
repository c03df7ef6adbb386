"""Layer 0 — files and the process: images, previews, result files and run folders, the one
slugifier and the one file hasher, process tuning. Imports nothing else from ``harness``."""
