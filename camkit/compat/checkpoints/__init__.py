"""Rebuild a classifier trained elsewhere from its backbone name, class file and checkpoint.

This is camkit's compatibility layer with the training projects camkit grew out of (a
timm-based fork of a classification template), but it reads any project that saves the same
files. Nothing is ever downloaded: every model is built with random weights
(``pretrained=False`` / ``weights=None``) and then filled from the checkpoint.

One module per concern, each documenting its format:

- ``classfile``: reading class files (:func:`read_class_names`), in both dialects
  (``name`` and ``id, name`` per line);
- ``names``: model names (:func:`build_backbone`): which timm or torchvision constructor a
  backbone name means, and the seed project's names in :data:`SEED_ALIASES`;
- ``safe_load``: weights-only loading (:func:`load_state_dict`): the checkpoint shapes read,
  the state_dict extracted from them, numpy scalars allowed;
- ``fit``: fitting a checkpoint to a model (:func:`load_classifier`): the timm and
  torchvision layouts compared with its keys, and the mismatch messages;
- ``factory``: the user's own model (:func:`load_factory_model`) from
  ``package.module:factory`` or ``path/to/file.py:factory``, with a checkpoint on top.
"""

from camkit.compat.checkpoints.classfile import read_class_names
from camkit.compat.checkpoints.factory import load_factory_model
from camkit.compat.checkpoints.fit import load_classifier
from camkit.compat.checkpoints.names import SEED_ALIASES, build_backbone
from camkit.compat.checkpoints.safe_load import load_state_dict

__all__ = [
    "SEED_ALIASES",
    "build_backbone",
    "load_classifier",
    "load_factory_model",
    "load_state_dict",
    "read_class_names",
]
