"""Probes: transformations, their statistics and the engine running them."""
