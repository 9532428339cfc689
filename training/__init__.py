"""Training of the embedded default model on procedurally rendered RGBD scenes (scenes.py needs only numpy;
the trainers need the [export] extra)."""
