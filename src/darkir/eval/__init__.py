"""Evaluation: image-quality metrics, paired/unpaired testing and variant comparisons."""
