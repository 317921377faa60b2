"""Benchmark methods, one module per family; each is registered by name in bench/registry.py."""
