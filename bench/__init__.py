"""Benchmarks: speed, scale and growth, side by side with scim2-server (``python -m bench``)."""
