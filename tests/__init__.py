"""Tests: parity with diffusers on tiny random-weight LDM3D models, CLI, runtime, tokenizer; -m slow for full size."""
