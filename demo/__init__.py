"""The demo's training code: small models trained on real data on the spot (not the library)."""
