"""Plugin system: hook specifications, the plugin manager and the registry."""

from camkit.plugins.hookspecs import PROJECT_NAME, hookimpl
from camkit.plugins.manager import (
    BUILTIN_PLUGIN_NAME,
    DISABLE_AUTOLOAD_ENV,
    Registration,
    Registry,
    create_method,
    create_renderer,
    get_plugin_manager,
    get_registry,
    list_architectures,
    list_methods,
    list_registrations,
    list_renderers,
    list_resolvers,
    register_plugin,
    reset_plugins,
    unregister_plugin,
)

__all__ = [
    "BUILTIN_PLUGIN_NAME",
    "DISABLE_AUTOLOAD_ENV",
    "PROJECT_NAME",
    "Registration",
    "Registry",
    "create_method",
    "create_renderer",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "list_architectures",
    "list_methods",
    "list_registrations",
    "list_renderers",
    "list_resolvers",
    "register_plugin",
    "reset_plugins",
    "unregister_plugin",
]
