"""Exception and warning types raised by camkit.

Every error camkit raises on purpose derives from :class:`CamkitError`, so callers can catch
them all at once; each also derives from the built-in type that matches its meaning
(``ValueError``, ``LookupError``, ``TypeError``) so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "CamkitError",
    "CamkitPluginWarning",
    "CheckpointError",
    "ConfigurationError",
    "DeviceFallbackWarning",
    "EmptyMapWarning",
    "ImageSkippedWarning",
    "InputError",
    "LayerNotFoundError",
    "LayerResolutionError",
    "MethodError",
    "MethodNotApplicableError",
    "MissingDependencyError",
    "ModelOutputError",
    "OutputError",
    "PluginConflictError",
    "PluginError",
    "TargetError",
    "UnknownNameError",
]


class CamkitError(Exception):
    """Base class of every error camkit raises on purpose."""


class ConfigurationError(CamkitError, ValueError, TypeError):
    """An argument given to camkit is invalid (a ``ValueError`` and a ``TypeError``, so that
    generic handlers of either keep working): an option out of range (``alpha``, ``top``,
    ``batch_size``), an empty or repeated layer list, an unknown fusion, a device name torch
    does not know."""


class InputError(CamkitError, ValueError):
    """An image or tensor given to an explainer cannot be used (wrong shape, type or file)."""


class TargetError(CamkitError, ValueError):
    """A target class is out of range, of the wrong type, or does not match the batch."""


class ModelOutputError(CamkitError, TypeError):
    """The model's forward returned something camkit cannot read class scores from, or
    scores that are NaN or infinite for finite inputs (the message names the images and any
    non-finite weights)."""


class LayerNotFoundError(CamkitError, LookupError):
    """An explicitly named target layer does not exist in the model."""


class LayerResolutionError(CamkitError, LookupError):
    """No target layer could be found, or the chosen layer cannot be used for a CAM."""


class MethodError(CamkitError, ValueError):
    """A CAM method broke its contract: ``compute`` returned something other than finite,
    non-negative ``(B, h, w)`` maps, or used a facility of its context it did not declare
    (gradients, extra passes, higher-order gradients)."""


class MethodNotApplicableError(MethodError):
    """A method cannot run on this model at this layer: it needs a structure they lack (CAM
    needs global average pooling followed directly by a linear head after the layer). The
    message names what is missing and what to choose instead (another layer, another
    method). A :class:`MethodError`, so handlers of that keep working."""


class OutputError(CamkitError, OSError):
    """A result could not be written: the file system refused it (a full disk, a missing
    permission) or an encoder failed. The message names the file."""


class MissingDependencyError(CamkitError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the
    extra to install (``pip install 'camkit[ray]'``)."""


class UnknownNameError(CamkitError, LookupError):
    """A method, renderer or other registered name is not known to the registry."""


class PluginConflictError(CamkitError, ValueError):
    """A method or renderer name was used that two plugins registered; the message names
    both providers and their distributions."""


class PluginError(CamkitError, RuntimeError):
    """A plugin is invalid: one registered at run time has an unknown hook name or a
    registration hook that raised or returned the wrong type; or, at explanation time, a
    plugin's resolver chose a layer the model lacks, or its ``camkit_to_spatial`` answered
    something other than a ``(B, C, H, W)`` tensor, or a plugin's hook raised and no other
    implementation answered. The message names the plugin."""


class CheckpointError(CamkitError, ValueError):
    """A class file, checkpoint or backbone name cannot be used to build a classifier (missing
    or empty file, pickled Python objects, unknown backbone, or weights that do not fit)."""


class CamkitPluginWarning(UserWarning):
    """A third-party plugin failed to load or register and was skipped."""


class DeviceFallbackWarning(UserWarning):
    """The requested device is unavailable; camkit fell back to the CPU."""


class EmptyMapWarning(UserWarning):
    """The gradient of the target score is zero everywhere on the target layer's map, so the
    explanation is empty: the layer is past the point where the score reads its spatial
    positions. The message ends with the plugins' advice (:func:`camkit.plugins.advice`)."""


class ImageSkippedWarning(UserWarning):
    """An image of a batch could not be read or explained; the batch went on without it."""
