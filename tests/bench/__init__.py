"""Benchmarks (`make bench`): the inventory plugin and server_role against the API double, as processes."""
