"""Rebuild a classifier trained elsewhere from its backbone name, class file and checkpoint.

The formats read are described in :mod:`camkit.compat.checkpoints.fit`.
"""

from camkit.compat.checkpoints.fit import (
    SEED_ALIASES,
    build_backbone,
    load_classifier,
    load_state_dict,
    read_class_names,
)

__all__ = [
    "SEED_ALIASES",
    "build_backbone",
    "load_classifier",
    "load_state_dict",
    "read_class_names",
]
