"""Benchmarks, one module per component: `python -m bench.<name>`."""
