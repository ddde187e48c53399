"""Training dynamics: how each layer's representation forms over the checkpoints of one
training run (:mod:`analysis.dynamics.series`)."""
