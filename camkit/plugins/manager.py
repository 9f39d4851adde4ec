"""The plugin manager, the registry built from its hooks, and the calls of the other hooks.

The registry is built lazily on first use: camkit's built-in plugin is registered, then every
entry point of the ``camkit`` group is loaded (unless ``CAMKIT_DISABLE_PLUGIN_AUTOLOAD=1``).
Installed plugins are consulted in alphabetical order of their distribution names, all of
them before the built-ins.
A plugin that fails to import (even with ``SystemExit``) or whose registration hook raises is
skipped with a :class:`~camkit.errors.CamkitPluginWarning` naming its distribution; camkit goes
on. Two distributions' entry points of the same name are both loaded, under the names
``"<distribution>:<entry point>"``. Two plugins registering the same method or renderer name
are both listed (marked ``conflict``); only using that name raises
:class:`~camkit.errors.PluginConflictError`.

At explanation time, an implementation of ``camkit_to_spatial``, ``camkit_input_size`` or a
plugin's layer resolver that raises something other than a
:class:`~camkit.errors.CamkitError` is skipped for that call, with one
:class:`~camkit.errors.CamkitPluginWarning` per plugin and hook naming it, so that the other
plugins and the built-ins still answer; when nothing else answers, a
:class:`~camkit.errors.PluginError` names the plugin.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.metadata
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs
import pluggy
from torch import Tensor

from camkit.errors import (
    CamkitError,
    CamkitPluginWarning,
    ConfigurationError,
    PluginConflictError,
    PluginError,
    UnknownNameError,
)
from camkit.layers.base import LayerResolver
from camkit.layers.table import ArchitectureMapping
from camkit.methods.base import CAMMethod
from camkit.plugins import builtin, hookspecs
from camkit.plugins.hookspecs import ADVICE_PROBLEMS, AdviceProblem
from camkit.render.base import Renderer

__all__ = [
    "BUILTIN_PLUGIN_NAME",
    "DISABLE_AUTOLOAD_ENV",
    "Kind",
    "PluginInfo",
    "Registration",
    "Registry",
    "advice",
    "ask_resolvers",
    "create_method",
    "create_renderer",
    "enforced_input_size",
    "generic_advice",
    "get_plugin_manager",
    "get_registry",
    "list_architectures",
    "list_methods",
    "list_plugins",
    "list_registrations",
    "list_renderers",
    "list_resolvers",
    "register_plugin",
    "reset_plugins",
    "resolve_method",
    "resolve_renderer",
    "to_spatial",
    "unregister_plugin",
]

DISABLE_AUTOLOAD_ENV = "CAMKIT_DISABLE_PLUGIN_AUTOLOAD"
"""Environment variable that, set to ``1``/``true``/``yes``, disables entry-point loading."""
BUILTIN_PLUGIN_NAME = "camkit"
"""Plugin name of camkit's own built-ins."""

Kind = Literal["method", "renderer", "resolver", "architecture"]


@attrs.frozen
class Registration:
    """One thing a plugin registered.

    Attributes:
        kind: ``"method"``, ``"renderer"``, ``"resolver"`` or ``"architecture"``.
        name: the registered name (for an architecture: its pattern).
        plugin: the plugin's name in the plugin manager (the entry point's name).
        distribution: the pip distribution that provided it (``"camkit"`` for built-ins),
            or ``None`` for a plugin registered at run time with :func:`register_plugin`.
        value: the class (methods, renderers), the resolver instance, or the layer name.
        conflict: another plugin registered the same method or renderer name; using the
            name raises :class:`~camkit.errors.PluginConflictError` naming both.
    """

    kind: Kind
    name: str
    plugin: str
    distribution: str | None
    value: Any = attrs.field(repr=False)
    conflict: bool = False


@attrs.frozen
class PluginInfo:
    """One loaded plugin.

    Attributes:
        name: the plugin's name in the plugin manager (the entry point's name).
        distribution: the pip distribution that provided it (``"camkit"`` for built-ins), or
            ``None`` for a plugin registered at run time with :func:`register_plugin`.
        hooks: the names of the hooks it implements, sorted.
    """

    name: str
    distribution: str | None
    hooks: tuple[str, ...]


@attrs.frozen
class Registry:
    """Everything registered, in the order it is consulted (plugins before built-ins).

    ``conflicts`` maps ``(kind, name)`` of each method or renderer name registered by more
    than one plugin to all its registrations; ``methods`` and ``renderers`` hold the first.
    """

    methods: Mapping[str, Registration]
    renderers: Mapping[str, Registration]
    resolvers: tuple[LayerResolver, ...]
    architectures: tuple[ArchitectureMapping, ...]
    entries: tuple[Registration, ...]
    conflicts: Mapping[tuple[Kind, str], tuple[Registration, ...]] = attrs.field(factory=dict)


class _PluginBuildError(Exception):
    def __init__(self, plugin: str, error: BaseException) -> None:
        super().__init__(plugin, error)
        self.plugin = plugin
        self.error = error


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.manager: pluggy.PluginManager | None = None
        self.distributions: dict[str, str | None] = {}
        self.registry: Registry | None = None
        self.warned: set[tuple[str, str]] = set()


_state = _State()


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _passes_through(error: BaseException) -> bool:
    """Whether ``error`` is the user's (Ctrl-C) or the interpreter's, never a plugin failure
    to report and skip."""
    return isinstance(error, (KeyboardInterrupt, GeneratorExit))


def _warn_skipped(plugin: str, distribution: str | None, error: BaseException) -> None:
    warnings.warn(
        f"camkit: skipped plugin {plugin!r} from distribution {distribution or 'unknown'!r}: "
        f"{type(error).__name__}: {error}. Fix or uninstall that package, or set "
        f"{DISABLE_AUTOLOAD_ENV}=1 to load no third-party plugins.",
        CamkitPluginWarning,
        stacklevel=3,
    )


def _dist_name(entry_point: importlib.metadata.EntryPoint) -> str | None:
    return entry_point.dist.name if entry_point.dist is not None else None


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    # Loaded in reverse order of (distribution, entry point) names: pluggy asks the last
    # registered first, so plugins are consulted in alphabetical order, whatever order the
    # file system lists the installed distributions in.
    # A name that several distributions' entry points share, or that is taken (the
    # built-ins' "camkit"), is qualified by the distribution: every one of them is loaded,
    # none silently replaces another.
    points = importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME)
    ordered = sorted(points, key=lambda p: (_dist_name(p) or "", p.name), reverse=True)
    counts: dict[str, int] = {}
    for entry_point in ordered:
        counts[entry_point.name] = counts.get(entry_point.name, 0) + 1
    for entry_point in ordered:
        dist = _dist_name(entry_point)
        name = entry_point.name
        if counts[name] > 1 or manager.has_plugin(name):
            name = f"{dist or 'unknown'}:{entry_point.name}"
        if manager.is_blocked(entry_point.name) or manager.is_blocked(name):
            continue
        try:
            plugin = entry_point.load()
            manager.register(plugin, name=name)
            manager.check_pending()
        except BaseException as error:
            if _passes_through(error):
                raise
            if manager.has_plugin(name):
                manager.unregister(name=name)
            _warn_skipped(name, dist, error)
            continue
        _state.distributions[name] = dist


def get_plugin_manager() -> pluggy.PluginManager:
    """Return camkit's :class:`pluggy.PluginManager`, loading plugins on first call."""
    with _state.lock:
        if _state.manager is None:
            manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
            manager.add_hookspecs(hookspecs)
            manager.register(builtin, name=BUILTIN_PLUGIN_NAME)
            _state.distributions = {BUILTIN_PLUGIN_NAME: "camkit"}
            _state.manager = manager
            if not _autoload_disabled():
                _load_entry_points(manager)
        return _state.manager


def _calls(hook: Any) -> Iterable[tuple[str, Callable[[], Any]]]:
    # pluggy calls implementations last-registered first, with trylast ones at the end;
    # get_hookimpls() lists them in the opposite order.
    for impl in reversed(hook.get_hookimpls()):
        yield impl.plugin_name, impl.function


def _conflict_message(kind: Kind, name: str, providers: Sequence[Registration]) -> str:
    by = [f"by plugin {r.plugin!r} (distribution {r.distribution!r})" for r in providers]
    times = "twice" if len(by) == 2 else f"{len(by)} times"
    listed = f"{', '.join(by[:-1])} and {by[-1]}"
    return (
        f"{kind} name {name!r} is registered {times}: {listed}. Uninstall one of them, or "
        "block one with camkit.plugins.get_plugin_manager().set_blocked(plugin name) before "
        f"first use; or pass the {kind} class itself instead of its name."
    )


def _named_classes(
    kind: Kind,
    hook: Any,
    base: type[CAMMethod] | type[Renderer],
    table: dict[str, Registration],
    entries: list[Registration],
    conflicts: dict[tuple[Kind, str], tuple[Registration, ...]],
    strict: str | None,
) -> None:
    for plugin, function in _calls(hook):
        dist = _state.distributions.get(plugin)
        try:
            classes = list(function() or ())
            for cls in classes:
                if not (isinstance(cls, type) and issubclass(cls, base)) or not cls.name:
                    raise PluginError(
                        f"{kind} registrations must be {base.__name__} subclasses with a "
                        f"non-empty `name`; got {cls!r}"
                    )
        except BaseException as error:
            if _passes_through(error):
                raise
            raise _PluginBuildError(plugin, error) from error
        for cls in classes:
            entry = Registration(kind, cls.name, plugin, dist, cls)
            previous = table.get(cls.name)
            if previous is not None:
                clash = (*conflicts.get((kind, cls.name), (previous,)), entry)
                if strict is not None and any(r.plugin == strict for r in clash):
                    raise PluginConflictError(_conflict_message(kind, cls.name, clash))
                conflicts[(kind, cls.name)] = clash
            else:
                table[cls.name] = entry
            entries.append(entry)


def _build(manager: pluggy.PluginManager, strict: str | None) -> Registry:
    entries: list[Registration] = []
    methods: dict[str, Registration] = {}
    renderers: dict[str, Registration] = {}
    conflicts: dict[tuple[Kind, str], tuple[Registration, ...]] = {}
    hook = manager.hook
    _named_classes(
        "method", hook.camkit_register_methods, CAMMethod, methods, entries, conflicts, strict
    )
    _named_classes(
        "renderer", hook.camkit_register_renderers, Renderer, renderers, entries, conflicts, strict
    )
    resolvers: list[LayerResolver] = []
    for plugin, function in _calls(manager.hook.camkit_register_resolvers):
        try:
            found = list(function() or ())
            bad = [r for r in found if not isinstance(r, LayerResolver)]
            if bad:
                raise PluginError(f"resolvers must be LayerResolver instances; got {bad[0]!r}")
        except BaseException as error:
            if _passes_through(error):
                raise
            raise _PluginBuildError(plugin, error) from error
        for resolver in found:
            label = resolver.name or type(resolver).__name__
            dist = _state.distributions.get(plugin)
            entries.append(Registration("resolver", label, plugin, dist, resolver))
        resolvers.extend(found)
    architectures: list[ArchitectureMapping] = []
    for plugin, function in _calls(manager.hook.camkit_register_architectures):
        try:
            rows = [ArchitectureMapping(p, layer, plugin) for p, layer in dict(function()).items()]
        except BaseException as error:
            if _passes_through(error):
                raise
            raise _PluginBuildError(plugin, error) from error
        dist = _state.distributions.get(plugin)
        entries.extend(Registration("architecture", r.pattern, plugin, dist, r.layer) for r in rows)
        architectures.extend(rows)
    clashing = {id(r) for clash in conflicts.values() for r in clash}
    marked = tuple(attrs.evolve(e, conflict=True) if id(e) in clashing else e for e in entries)
    return Registry(methods, renderers, tuple(resolvers), tuple(architectures), marked, conflicts)


def get_registry() -> Registry:
    """Return the registry of methods, renderers, resolvers and architectures.

    Two plugins registering the same method or renderer name do not make this fail: both
    registrations are kept (marked ``conflict``) and listed in ``Registry.conflicts``; using
    the name raises :class:`~camkit.errors.PluginConflictError`.
    """
    return _registry()


def _registry(strict: str | None = None) -> Registry:
    """Build (or return) the registry; a failure of plugin ``strict`` raises PluginError."""
    with _state.lock:
        if _state.registry is not None:
            return _state.registry
        manager = get_plugin_manager()
        while True:
            try:
                _state.registry = _build(manager, strict)
                return _state.registry
            except _PluginBuildError as failure:
                if failure.plugin == BUILTIN_PLUGIN_NAME:
                    raise failure.error from None
                if failure.plugin == strict:
                    raise PluginError(
                        f"plugin {strict!r} failed to register: "
                        f"{type(failure.error).__name__}: {failure.error}"
                    ) from failure.error
                dist = _state.distributions.pop(failure.plugin, None)
                manager.unregister(name=failure.plugin)
                _warn_skipped(failure.plugin, dist, failure.error)


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object or module at run time (notebooks, tests, applications).

    Installed packages do not need this: they are found through the ``camkit`` entry-point
    group. Returns the plugin's name. The registry is rebuilt at once, so any problem raises
    here and leaves the plugin unregistered.

    Raises:
        PluginConflictError: the plugin registers a method or renderer name already taken.
        PluginError: a hook name is unknown (misspelt), or a registration hook raised or
            returned something of the wrong type.
        ValueError: a plugin with that name or object is already registered, or blocked.
    """
    with _state.lock:
        manager = get_plugin_manager()
        registered = manager.register(plugin, name=name)
        if registered is None:
            raise PluginError(f"plugin {name!r} is blocked and cannot be registered")
        _state.distributions[registered] = None
        _state.registry = None
        try:
            try:
                manager.check_pending()
            except Exception as error:
                raise PluginError(f"plugin {registered!r} is invalid: {error}") from error
            _registry(strict=registered)
        except BaseException:
            manager.unregister(name=registered)
            _state.distributions.pop(registered, None)
            _state.registry = None
            raise
        return str(registered)


def unregister_plugin(name: str) -> None:
    """Unregister the plugin registered under ``name``.

    Raises:
        UnknownNameError: no plugin has that name.
    """
    with _state.lock:
        manager = get_plugin_manager()
        if not manager.has_plugin(name):
            raise UnknownNameError(f"no plugin named {name!r} is registered")
        manager.unregister(name=name)
        _state.distributions.pop(name, None)
        _state.registry = None


def reset_plugins() -> None:
    """Forget every plugin; the next use reloads the built-ins and the entry points."""
    with _state.lock:
        _state.manager = None
        _state.registry = None
        _state.distributions = {}
        _state.warned = set()


def list_registrations(kind: Kind | None = None) -> list[Registration]:
    """Every registration (optionally of one kind) with the plugin and distribution.

    A method or renderer name that several plugins register is listed once per provider,
    each marked ``conflict=True``.
    """
    return [e for e in get_registry().entries if kind is None or e.kind == kind]


def list_plugins() -> list[PluginInfo]:
    """Every loaded plugin with its distribution and hooks, built-ins first.

    Only plugins that loaded and registered cleanly are listed; skipped ones were reported
    by a :class:`~camkit.errors.CamkitPluginWarning`.
    """
    get_registry()  # drops plugins whose registration hooks fail
    manager = get_plugin_manager()
    plugins = []
    for name, plugin in manager.list_name_plugin():
        hooks = tuple(sorted(caller.name for caller in manager.get_hookcallers(plugin) or ()))
        plugins.append(PluginInfo(name, _state.distributions.get(name), hooks))
    return plugins


def _names(kind: Kind, pattern: str) -> list[str]:
    return sorted(
        {e.name for e in list_registrations(kind) if fnmatch.fnmatchcase(e.name, pattern)}
    )


def list_methods(pattern: str = "*") -> list[str]:
    """Names of the registered CAM methods matching the glob ``pattern``."""
    return _names("method", pattern)


def list_renderers(pattern: str = "*") -> list[str]:
    """Names of the registered renderers matching the glob ``pattern``."""
    return _names("renderer", pattern)


def list_resolvers(pattern: str = "*") -> list[str]:
    """Names of the registered layer resolvers matching ``pattern``, in the order asked."""
    seen = [e.name for e in list_registrations("resolver") if fnmatch.fnmatchcase(e.name, pattern)]
    return list(dict.fromkeys(seen))


def list_architectures(pattern: str = "*") -> list[str]:
    """Architecture patterns of the table matching the glob ``pattern``."""
    return _names("architecture", pattern)


def _lookup(kind: Kind, table: Mapping[str, Registration], name: str) -> Registration:
    clash = get_registry().conflicts.get((kind, name))
    if clash is not None:
        raise PluginConflictError(_conflict_message(kind, name, clash))
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    raise UnknownNameError(
        f"unknown {kind} {name!r}; {hint}registered {kind}s: {', '.join(sorted(table))}. "
        f"Install or register a plugin that provides it."
    )


def create_method(name: str) -> CAMMethod:
    """Instantiate the CAM method registered under ``name`` with its defaults.

    Raises:
        UnknownNameError: the name is not registered.
        PluginConflictError: several plugins registered the name.
    """
    method: CAMMethod = _lookup("method", get_registry().methods, name).value()
    return method


def resolve_method(method: str | CAMMethod | type[CAMMethod]) -> CAMMethod:
    """A method instance from a registered name, an instance or a subclass.

    Raises:
        UnknownNameError: the name is not registered.
        PluginConflictError: several plugins registered the name.
        ConfigurationError: ``method`` is none of the three.
    """
    if isinstance(method, str):
        return create_method(method)
    if isinstance(method, CAMMethod):
        return method
    if isinstance(method, type) and issubclass(method, CAMMethod):
        return method()
    raise ConfigurationError(
        f"method must be a registered name, a CAMMethod or a CAMMethod subclass, got {method!r}"
    )


def resolve_renderer(renderer: str | Renderer | type[Renderer]) -> Renderer:
    """A renderer instance from a registered name, an instance or a subclass.

    Raises:
        UnknownNameError: the name is not registered.
        PluginConflictError: several plugins registered the name.
        ConfigurationError: ``renderer`` is none of the three.
    """
    if isinstance(renderer, str):
        return create_renderer(renderer)
    if isinstance(renderer, Renderer):
        return renderer
    if isinstance(renderer, type) and issubclass(renderer, Renderer):
        return renderer()
    raise ConfigurationError(
        f"renderer must be a registered name, a Renderer or a Renderer subclass, got {renderer!r}"
    )


def create_renderer(name: str) -> Renderer:
    """Instantiate the renderer registered under ``name`` with its defaults.

    Raises:
        UnknownNameError: the name is not registered.
        PluginConflictError: several plugins registered the name.
    """
    renderer: Renderer = _lookup("renderer", get_registry().renderers, name).value()
    return renderer


def _origin(plugin: str) -> str:
    """``"'plugin' (distribution 'd')"``, for messages."""
    return f"{plugin!r} (distribution {_state.distributions.get(plugin)!r})"


def _what_to_do(plugin: str) -> str:
    """What a user can do about a failing plugin, for messages."""
    dist = _state.distributions.get(plugin)
    if dist is None:
        return (
            f"Fix the plugin registered at run time as {plugin!r}, or unregister it "
            f"(camkit.unregister_plugin({plugin!r}))."
        )
    return (
        f"Update or uninstall {dist!r} (pip install -U {dist} / pip uninstall {dist}), or "
        f"report the error to its authors; set {DISABLE_AUTOLOAD_ENV}=1 to load no third-party "
        "plugins."
    )


def _answering_plugin(hook: Any, arguments: Mapping[str, Any]) -> str:
    """``"'plugin' (distribution 'd')"`` of the implementation that answers ``hook``: asks the
    implementations again, in pluggy's order (error paths only; wrappers do not answer, and
    implementations that raise are passed over)."""
    for impl in reversed(hook.get_hookimpls()):
        if impl.wrapper or impl.hookwrapper:
            continue
        try:
            answer = impl.function(**{name: arguments[name] for name in impl.argnames})
        except Exception:
            continue
        if answer is not None:
            return _origin(impl.plugin_name)
    return "unknown"


def _code_of(function: Any) -> Any:
    return getattr(getattr(function, "__func__", function), "__code__", None)


def _raising_plugin(hook: Any, arguments: Mapping[str, Any], error: BaseException) -> str | None:
    """The name of the plugin whose implementation of ``hook`` raised ``error``.

    Read from the traceback: the first implementation frame after the last frame of pluggy's
    call loop (so that an exception thrown through a wrapper is blamed on the implementation
    that raised it, not on the wrapper). When the traceback does not tell (an implementation
    that is not a Python function), the implementations are asked again one by one and the
    first that raises is blamed.
    """
    impls = {_code_of(impl.function): impl for impl in hook.get_hookimpls()}
    frames = []
    trace = error.__traceback__
    while trace is not None:
        frames.append(trace.tb_frame)
        trace = trace.tb_next
    starts = [
        i
        for i, frame in enumerate(frames)
        if frame.f_code.co_name == "_multicall"
        and str(frame.f_globals.get("__name__", "")).startswith("pluggy")
    ]
    for frame in frames[starts[-1] + 1 if starts else 0 :]:
        impl = impls.get(frame.f_code)
        if impl is not None:
            return str(impl.plugin_name)
    for impl in reversed(hook.get_hookimpls()):
        if impl.wrapper or impl.hookwrapper:
            continue
        try:
            impl.function(**{name: arguments[name] for name in impl.argnames})
        except Exception:
            return str(impl.plugin_name)
    return None


def _warn_hook_failure(what: str, plugin: str, error: BaseException, about: str) -> None:
    """One :class:`CamkitPluginWarning` per plugin and ``what`` (a hook, a resolver) until
    :func:`reset_plugins`: ``what`` of ``plugin`` raised ``error`` ``about`` a model."""
    with _state.lock:
        if (what, plugin) in _state.warned:
            return
        _state.warned.add((what, plugin))
    warnings.warn(
        f"camkit: the {what} of plugin {_origin(plugin)} raised {type(error).__name__}: "
        f"{error} ({about}). camkit passed over it and asked the other plugins and its "
        "built-ins; it does so whenever it raises, and gives this warning once. "
        f"{_what_to_do(plugin)}",
        CamkitPluginWarning,
        stacklevel=4,
    )


def _call_skipping_failures(
    hook_name: str, arguments: Mapping[str, Any], about: str
) -> tuple[Any, Any, list[tuple[str, BaseException]]]:
    """Call the ``firstresult`` hook ``hook_name``, passing over implementations that raise.

    An implementation of a third-party plugin that raises anything but a
    :class:`~camkit.errors.CamkitError` (a deliberate error, which propagates) is warned about
    once (:func:`_warn_hook_failure`) and the hook is called again without that plugin.

    Returns:
        The answer, the hook caller that gave it, and the ``(plugin, error)`` pairs of the
        implementations passed over.

    Raises:
        CamkitError: an implementation raised it.
        Exception: camkit's built-in implementation raised (a bug of camkit's), or the
            implementation that raised could not be told.
    """
    manager = get_plugin_manager()
    failures: list[tuple[str, BaseException]] = []
    hook = getattr(manager.hook, hook_name)
    while True:
        try:
            return hook(**arguments), hook, failures
        except CamkitError:
            raise
        except BaseException as error:
            if _passes_through(error):
                raise
            plugin = _raising_plugin(hook, arguments, error)
            if plugin is None or plugin == BUILTIN_PLUGIN_NAME:
                raise
            failures.append((plugin, error))
            _warn_hook_failure(f"{hook_name} hook", plugin, error, about)
            removed = [manager.get_plugin(name) for name, _ in failures]
            hook = manager.subset_hook_caller(hook_name, removed)


def _failure_summary(hook_name: str, failures: Sequence[tuple[str, BaseException]]) -> str:
    return "; ".join(
        f"the {hook_name} hook of plugin {_origin(plugin)} raised {type(error).__name__}: {error}"
        for plugin, error in failures
    )


def to_spatial(model: Any, layer: str, output: Any, input_size: tuple[int, int]) -> Any:
    """Ask the ``camkit_to_spatial`` hook to turn ``output`` into ``(B, C, H, W)``.

    Returns the first non-``None`` answer, or ``None`` when no implementation answers. An
    implementation that raises anything but a :class:`~camkit.errors.CamkitError` is passed
    over with one :class:`~camkit.errors.CamkitPluginWarning` (per plugin) naming it, so that
    a broken plugin does not break the models it does not handle.

    Raises:
        PluginError: the answer is not a 4-D tensor; or an implementation raised and no
            other one answered. The message names the plugin.
    """
    arguments = {"model": model, "layer": layer, "output": output, "input_size": input_size}
    about = f"on the output {tuple(output.shape)} of layer {layer!r} of {type(model).__name__}"
    result, hook, failures = _call_skipping_failures("camkit_to_spatial", arguments, about)
    if result is None and failures:
        plugin, cause = failures[0]
        raise PluginError(
            f"{_failure_summary('camkit_to_spatial', failures)}, {about}, and no other plugin "
            f"reads that layout. {_what_to_do(plugin)}"
        ) from cause
    if result is None or (isinstance(result, Tensor) and result.ndim == 4):
        return result
    culprit = _answering_plugin(hook, arguments)
    shape = tuple(getattr(result, "shape", ()))
    raise PluginError(
        f"the camkit_to_spatial hook of plugin {culprit} turned the output {tuple(output.shape)} "
        f"of layer {layer!r} into {type(result).__name__} {shape}, not a (B, C, H, W) "
        "tensor. Fix or uninstall that plugin, or set "
        f"{DISABLE_AUTOLOAD_ENV}=1."
    )


def enforced_input_size(model: Any) -> tuple[int, int] | None:
    """Ask the ``camkit_input_size`` hook for the only input size ``(H, W)`` ``model`` accepts.

    Returns the first non-``None`` answer as a pair of ints, or ``None`` when no
    implementation answers (the model takes the size its configuration gives). An
    implementation that raises anything but a :class:`~camkit.errors.CamkitError` is passed
    over with one :class:`~camkit.errors.CamkitPluginWarning` (per plugin) naming it.

    Raises:
        PluginError: the answer is not two positive integers; the message names the plugin
            that gave it.
    """
    about = f"for {type(model).__name__}"
    result, hook, _ = _call_skipping_failures("camkit_input_size", {"model": model}, about)
    if result is None:
        return None
    try:
        height, width = result
        valid = all(isinstance(v, int) and not isinstance(v, bool) for v in (height, width))
    except (TypeError, ValueError):
        valid = False
    if valid and height >= 1 and width >= 1:
        return int(height), int(width)
    culprit = _answering_plugin(hook, {"model": model})
    raise PluginError(
        f"the camkit_input_size hook of plugin {culprit} answered {result!r} for "
        f"{type(model).__name__}, not an input size (H, W) of two positive integers. Fix or "
        f"uninstall that plugin, or set {DISABLE_AUTOLOAD_ENV}=1."
    )


def _resolver_entry(resolver: LayerResolver) -> Registration | None:
    for entry in list_registrations("resolver"):
        if entry.value is resolver:
            return entry
    return None


def ask_resolvers(model: Any, example: Tensor | None) -> tuple[LayerResolver, str] | None:
    """Ask the registered layer resolvers, in order, for ``model``'s target layer.

    Returns the first resolver that answers and its answer, or ``None`` when none does. A
    plugin's resolver that raises anything but a :class:`~camkit.errors.CamkitError` is
    passed over with one :class:`~camkit.errors.CamkitPluginWarning` (per plugin) naming it,
    so that a broken plugin does not break the models it does not handle.

    Args:
        model: the model, already in eval mode.
        example: a preprocessed input batch for resolvers that run the model, or ``None``.

    Raises:
        PluginError: a plugin's resolver raised and no other resolver answered; the message
            names the plugin.
        CamkitError: a resolver raised it (the structural resolver's layout verdict).
    """
    failures: list[tuple[str, BaseException]] = []
    for resolver in get_registry().resolvers:
        try:
            name = resolver.resolve(model, example)
        except CamkitError:
            raise
        except BaseException as error:
            entry = _resolver_entry(resolver)
            if _passes_through(error) or entry is None or entry.plugin == BUILTIN_PLUGIN_NAME:
                raise
            failures.append((entry.plugin, error))
            label = f"layer resolver {resolver.name or type(resolver).__name__!r}"
            _warn_hook_failure(label, entry.plugin, error, f"for {type(model).__name__}")
            continue
        if name is not None:
            return resolver, name
    if failures:
        plugin, cause = failures[0]
        summary = "; ".join(
            f"a layer resolver of plugin {_origin(p)} raised {type(e).__name__}: {e}"
            for p, e in failures
        )
        raise PluginError(
            f"no target layer found for {type(model).__name__}: {summary}, and no other "
            f"resolver knows the model. Pass layer= to Explainer; or: {_what_to_do(plugin)}"
        ) from cause
    return None


_GENERIC_ADVICE: Mapping[str, str] = {
    "layout": (
        "Pass layer= with a convolutional layer, whose output is a (B, C, H, W) map; or "
        "install an architecture plugin that handles this model (see the available plugins "
        "in docs/plugins.md; `camkit plugins` lists the loaded ones); or register a "
        "camkit_to_spatial hook that reshapes this layer's output (docs/plugins.md)."
    ),
    "empty-map": (
        "An architecture plugin that handles this model may know a better layer (see the "
        "available plugins in docs/plugins.md; `camkit plugins` lists the loaded ones)."
    ),
    "no-layer": (
        "Pass layer='<dotted name>' to Explainer; or install an architecture plugin that "
        "handles this model (see the available plugins in docs/plugins.md; `camkit plugins` "
        "lists the loaded ones); or register a camkit_register_architectures row or a layer "
        "resolver for it (docs/plugins.md)."
    ),
}


def generic_advice(problem: AdviceProblem) -> str:
    """camkit's own advice for ``problem`` (one of
    :data:`~camkit.plugins.hookspecs.ADVICE_PROBLEMS`), used when no plugin answers
    ``camkit_advice``. It names no plugin and no architecture family."""
    if problem not in _GENERIC_ADVICE:
        raise ConfigurationError(f"unknown problem {problem!r}; expected one of {ADVICE_PROBLEMS}")
    return _GENERIC_ADVICE[problem]


def _unloaded_entry_points() -> list[str]:
    """``"distribution (entry point 'name')"`` of each entry point of the ``camkit`` group that
    is not loaded, when autoload is disabled; empty otherwise."""
    if not _autoload_disabled():
        return []
    manager = get_plugin_manager()
    modules = {getattr(p, "__name__", None) for _, p in manager.list_name_plugin()}
    found = []
    for point in importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME):
        if manager.has_plugin(point.name) or getattr(point, "module", None) in modules:
            continue  # registered at run time
        found.append(f"{_dist_name(point) or 'unknown'} (entry point {point.name!r})")
    return sorted(set(found))


def advice(model: Any, layer: str | None, problem: AdviceProblem) -> str:
    """The advice to append to a camkit message about ``problem`` with ``model``.

    Asks every ``camkit_advice`` implementation (in pluggy's order, last-registered first)
    and joins their non-empty answers; when none answers, returns :func:`generic_advice`.
    An implementation that raises, or answers something other than a string, is skipped,
    and the advice says so: a failing plugin never hides the error the advice is for.
    Wrappers of the hook are not called.

    When ``CAMKIT_DISABLE_PLUGIN_AUTOLOAD`` is set and the ``camkit`` entry-point group has
    entry points that are not loaded, the advice starts by saying so and names their
    distributions.

    Args:
        model: the model being explained.
        layer: dotted name of the layer concerned, or ``None``.
        problem: one of :data:`~camkit.plugins.hookspecs.ADVICE_PROBLEMS`.
    """
    generic = generic_advice(problem)
    arguments = {"model": model, "layer": layer, "problem": problem}
    answers: list[str] = []
    failures: list[str] = []
    try:
        impls = list(reversed(get_plugin_manager().hook.camkit_advice.get_hookimpls()))
        unloaded = _unloaded_entry_points()
    except Exception as error:  # advice must never replace the error it is for
        impls, unloaded = [], []
        failures.append(f"the plugins could not be asked ({type(error).__name__}: {error})")
    for impl in impls:
        if impl.wrapper or impl.hookwrapper:
            continue
        try:
            text = impl.function(**{name: arguments[name] for name in impl.argnames})
        except BaseException as error:
            if _passes_through(error):
                raise
            failures.append(
                f"the camkit_advice hook of plugin {_origin(impl.plugin_name)} raised "
                f"{type(error).__name__}: {error}"
            )
            continue
        if text is None:
            continue
        if not isinstance(text, str):
            failures.append(
                f"the camkit_advice hook of plugin {_origin(impl.plugin_name)} answered "
                f"{type(text).__name__}, not a string"
            )
        elif text.strip():
            answers.append(text.strip())
    parts = []
    if unloaded:
        parts.append(
            f"Installed camkit plugins are not loaded, because {DISABLE_AUTOLOAD_ENV} is set: "
            f"{', '.join(unloaded)}. Unset it, or register the ones you need with "
            "camkit.register_plugin."
        )
    parts.extend(answers or [generic])
    if failures:
        parts.append(f"(Skipped: {'; '.join(failures)}.)")
    return " ".join(parts)


def resolver_origin(resolver: LayerResolver) -> str:
    """``"'name' (plugin 'p', distribution 'd')"`` for a registered resolver, for messages."""
    label = resolver.name or type(resolver).__name__
    entry = _resolver_entry(resolver)
    if entry is not None:
        return f"{label!r} (plugin {entry.plugin!r}, distribution {entry.distribution!r})"
    return repr(label)
