"""The user's own model from a factory (:func:`load_factory_model`).

A model spec names a callable that builds the model, in one of two forms:

- ``package.module:factory``: a module importable from the current folder or from the
  installed packages, and an attribute of it;
- ``path/to/file.py:factory``: a Python file, run as a module of its own (its folder is put
  on ``sys.path`` while it is imported and while the factory runs, so it can import the
  modules beside it), and an attribute of it.

The attribute may be dotted (``models:Registry.build``). The factory is called with no
arguments and must return a ``torch.nn.Module``: a function that builds and returns the model,
or the model class itself when its constructor needs no arguments. A checkpoint given as
``weights`` is then loaded on top with ``load_state_dict(strict=True)``, read as
:func:`~camkit.compat.checkpoints.load_state_dict` reads checkpoints (wrappers and
``module.`` prefixes handled, weights only); when it does not fit, the message lists the
head's class counts and the missing, unexpected and wrongly-shaped keys, as for named
backbones.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from camkit.compat.checkpoints.classfile import read_class_names
from camkit.compat.checkpoints.fit import _Comparison, _head_key
from camkit.compat.checkpoints.safe_load import load_state_dict
from camkit.errors import CheckpointError, ConfigurationError

__all__ = ["declared_class_names", "is_factory_spec", "load_factory_model", "load_weights"]

_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_FORMS = "'package.module:factory' or 'path/to/file.py:factory'"


def is_factory_spec(text: str) -> bool:
    """Whether ``text`` names a model factory (``source:attribute``, the attribute a dotted
    Python name) rather than a backbone name. Backbone names never hold such a colon."""
    source, colon, attribute = text.rpartition(":")
    return bool(colon and source and _DOTTED.fullmatch(attribute))


def load_factory_model(
    spec: str,
    weights: str | os.PathLike[str] | None = None,
    classes: str | os.PathLike[str] | None = None,
) -> tuple[nn.Module, list[str] | None]:
    """Build the model that ``spec``'s factory returns, load ``weights`` on top, and read
    its class names.

    Args:
        spec: ``package.module:factory`` or ``path/to/file.py:factory`` (see the module
            docstring); the factory is called with no arguments.
        weights: a checkpoint (formats: :func:`~camkit.compat.checkpoints.load_state_dict`)
            loaded with ``strict=True``; ``None`` keeps the weights the factory gave.
        classes: a class file (formats: :func:`~camkit.compat.checkpoints.read_class_names`),
            whose line count must match the model's head.

    Returns:
        ``(model, class_names)``: the model in eval mode, and the class file's names, else
        the names the model declares (:func:`declared_class_names`), else ``None``.

    Raises:
        ConfigurationError: ``spec`` is not one of the two forms, the file is missing, the
            module cannot be imported (or raised while importing), the attribute is missing
            or not callable, the factory raised, or it returned something other than an
            ``nn.Module``. The message says which, and what to do.
        CheckpointError: ``weights`` is missing, unreadable, or does not fit the model; the
            class file is missing or unreadable, or lists another number of classes than
            the model's head has.
    """
    source, colon, attribute = spec.rpartition(":")
    if not (colon and source and _DOTTED.fullmatch(attribute)):
        raise ConfigurationError(
            f"model spec {spec!r} names no factory; write it as {_FORMS}, the factory being "
            "a callable that returns the nn.Module"
        )
    if source.lower().endswith(".py"):
        folder = Path(source).resolve().parent
        with _on_path(folder):
            module = _import_file(Path(source), spec)
            model = _call(_factory(module, attribute, spec), spec)
    elif _DOTTED.fullmatch(source):
        with _on_path(Path.cwd()):
            module = _import_module(source, attribute, spec)
            model = _call(_factory(module, attribute, spec), spec)
    else:
        raise ConfigurationError(
            f"model spec {spec!r}: {source!r} is neither a Python file (ending in .py) nor a "
            f"module name; write it as {_FORMS}"
        )
    if weights is not None:
        load_weights(model, weights, spec)
    if classes is None:
        return model.eval(), declared_class_names(model)
    names = read_class_names(classes)
    rows = _head_rows(model)
    if rows and rows != len(names):
        raise CheckpointError(
            f"the class file {str(classes)!r} lists {len(names)} classes but the head of the "
            f"model of {spec!r} has {rows}; use the class file the model was trained with "
            "(one class per line, in training order)"
        )
    return model.eval(), names


def _head_rows(model: nn.Module) -> int:
    """The classifier head's output count (see ``fit._head_key``), ``0`` when unknown."""
    head = _head_key(model)
    if head is None:
        return 0
    weight = model.state_dict()[head]
    return int(weight.shape[0]) if weight.ndim >= 1 else 0


def load_weights(model: nn.Module, weights: str | os.PathLike[str], label: str) -> None:
    """Load the checkpoint ``weights`` into ``model`` with ``strict=True``, in place.

    Keys and shapes are compared first, so a checkpoint that does not fit changes nothing.
    ``label`` names the model in messages.

    Raises:
        CheckpointError: the file is missing or unreadable (see
            :func:`~camkit.compat.checkpoints.load_state_dict`), or its keys or shapes do not
            match the model's: the message gives the head's class count in both, and the
            missing, unexpected and wrongly-shaped keys (counts and a few names).
    """
    state = load_state_dict(weights)
    found = _Comparison.of(model, state, _head_rows(model))
    problems = found.problems(state, "the model's head has")
    if problems:
        hints = []
        if any(kind == "head" for kind, _ in problems):
            hints.append("make the factory build the model with the checkpoint's class count")
        if any(kind == "keys" for kind, _ in problems):
            hints.append(
                "check that the factory builds the architecture the checkpoint was trained "
                "with, and that the checkpoint holds that model's state_dict"
            )
        hint = "; ".join(hints)
        raise CheckpointError(
            f"checkpoint {str(weights)!r} does not fit the model of {label!r}:\n"
            + "".join(f"  - {text}\n" for _, text in problems)
            + f"{hint[:1].upper()}{hint[1:]}."
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:  # keys and shapes matched; be safe
        raise CheckpointError(
            f"checkpoint {str(weights)!r} does not load into the model of {label!r}: {error}"
        ) from error


def declared_class_names(model: nn.Module) -> list[str] | None:
    """The class names a model declares: the ``label_names`` of its timm-style
    ``pretrained_cfg`` (its own, else the first submodule's), when they are strings and as
    many as its head's classes; else ``None``. Nothing is made up from class indices."""
    for module in model.modules():
        config = getattr(module, "pretrained_cfg", None)
        if isinstance(config, Mapping):
            names = config.get("label_names")
            break
    else:
        return None
    if not isinstance(names, Sequence) or isinstance(names, str) or not names:
        return None
    if not all(isinstance(name, str) for name in names):
        return None
    rows = _head_rows(model)
    return list(names) if not rows or rows == len(names) else None


@contextlib.contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` for the block, unless it is there already."""
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def _import_file(path: Path, spec: str) -> ModuleType:
    if not path.is_file():
        where = "a folder" if path.is_dir() else "not found"
        raise ConfigurationError(
            f"model file {str(path)!r} of {spec!r} is {where}; give the path of the Python "
            "file that defines the factory, relative to the current folder or absolute "
            "(e.g. models/net.py:build)"
        )
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"camkit_user_model_{stem}_{digest}"
    loader_spec = importlib.util.spec_from_file_location(name, resolved)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigurationError(
            f"cannot load {str(path)!r} of {spec!r} as a Python module; is it a .py file?"
        )
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # classes defined there can find their module
    try:
        loader_spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:
        del sys.modules[name]
        raise ConfigurationError(
            f"running {str(path)!r} for {spec!r} raised {type(error).__name__}: {error}; fix "
            "the file so that `python " + str(path) + "` runs without error"
        ) from error
    return module


def _import_module(source: str, attribute: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if source == missing or source.startswith(missing + "."):
            raise ConfigurationError(
                f"cannot import module {source!r} of {spec!r}: there is no module "
                f"{missing!r}. Install its package, run camkit from the folder that holds "
                f"it, add that folder to PYTHONPATH, or name the file instead: "
                f"path/to/{source.rsplit('.', 1)[-1]}.py:{attribute}"
            ) from error
        raise ConfigurationError(
            f"importing module {source!r} of {spec!r} failed: it imports {missing!r}, which "
            "is not installed; install it"
        ) from error
    except (Exception, SystemExit) as error:
        raise ConfigurationError(
            f"importing module {source!r} of {spec!r} raised {type(error).__name__}: {error}; "
            f"fix the module so that `python -c 'import {source}'` works"
        ) from error


def _factory(module: ModuleType, attribute: str, spec: str) -> Any:
    found: Any = module
    walked: list[str] = []
    for part in attribute.split("."):
        if not hasattr(found, part):
            owner = ".".join([module.__name__, *walked]) if walked else "the module"
            public = sorted(n for n in dir(found) if not n.startswith("_") and n[:1].islower())
            shown = ", ".join(public[:10]) + (", ..." if len(public) > 10 else "")
            raise ConfigurationError(
                f"{spec!r}: {owner} has no attribute {part!r}; name the function (or class) "
                "that builds the model after the colon"
                + (f" (its lower-case names: {shown})" if shown else "")
            )
        found = getattr(found, part)
        walked.append(part)
    if not callable(found):
        raise ConfigurationError(
            f"{spec!r}: {attribute!r} is a {type(found).__name__}, not a callable; name a "
            "function that builds and returns the model (it is called with no arguments)"
        )
    return found


def _call(factory: Any, spec: str) -> nn.Module:
    try:
        model = factory()
    except (Exception, SystemExit) as error:
        raise ConfigurationError(
            f"the factory {spec!r} raised {type(error).__name__}: {error}; it is called with "
            "no arguments and must return the model (wrap it in a function that passes the "
            "arguments it needs)"
        ) from error
    if not isinstance(model, nn.Module):
        raise ConfigurationError(
            f"the factory {spec!r} returned a {type(model).__name__}, not a torch.nn.Module; "
            "make it return the model itself (not a tuple, a state_dict or a path)"
        )
    return model
