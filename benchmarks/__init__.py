"""Measurements of the export and the runtime; results for this project's machines live in results/."""
