"""Datasets: paired low/high folders in several layouts, unpaired folders, splits and synthesis."""
