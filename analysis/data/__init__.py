"""Datasets: reading uploaded files into validated arrays; safe archives."""
