"""Measures: the engine, the registry and each family; alignment and compatibility."""
