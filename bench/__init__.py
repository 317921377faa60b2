"""bench: a benchmark harness for sequential recommenders, classic and LLM-based."""

__version__ = "0.1.0"
