"""Models: loading checkpoint formats safely, what a loaded model is, extraction."""
