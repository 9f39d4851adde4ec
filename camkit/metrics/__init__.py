"""Quantitative evaluation of class-activation maps, batched on torch tensors.

The metrics live in :mod:`camkit.metrics.faithfulness` for now; this package re-exports them.
"""

from __future__ import annotations

from camkit.metrics.faithfulness import (
    Box,
    Boxes,
    average_drop,
    confidence_drop,
    deletion_auc,
    energy_pointing_game,
    increase_in_confidence,
    insertion_auc,
    pointing_game,
)

__all__ = [
    "Box",
    "Boxes",
    "average_drop",
    "confidence_drop",
    "deletion_auc",
    "energy_pointing_game",
    "increase_in_confidence",
    "insertion_auc",
    "pointing_game",
]
