"""Datasets: cards, raw readers, the D3 processing recipe and the prepared split."""

from bench.data.cards import DatasetCard, list_cards, load_card
from bench.data.split import Catalogue, Samples, Split

__all__ = ["Catalogue", "DatasetCard", "Samples", "Split", "list_cards", "load_card"]
