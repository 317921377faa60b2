"""Per-sample values of runs that scored the same samples in different orders, put side by side."""

from __future__ import annotations

import numpy as np


def align(sample_index: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """values (ordered like sample_index) at the sorted indices `wanted`, all present."""
    order = np.argsort(sample_index, kind="stable")
    return values[order[np.searchsorted(sample_index[order], wanted)]]
