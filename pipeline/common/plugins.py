"""A registry of backends chosen by name: the plugin mechanism detectors and classifiers share.

A stage keeps one :class:`PluginRegistry`; backends register a factory (a class or a
function taking the stage's settings section) under a name with :meth:`PluginRegistry.register`,
and :meth:`PluginRegistry.create` builds the one ``settings.backend`` names. Built-ins that pull
heavy dependencies (onnxruntime, torch, an optional package) are listed as lazy modules and
imported on first use, so importing a stage's registry stays cheap (frigate's
``detector_types`` idea).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["PluginRegistry"]


class _Named(Protocol):
    @property
    def backend(self) -> str: ...


S = TypeVar("S", bound=_Named)  # the stage's settings section
B = TypeVar("B")  # the stage's backend protocol
F = TypeVar("F", bound=Callable[..., Any])


class PluginRegistry(Generic[S, B]):
    """Name -> backend factory, with lazily imported built-ins.

    Args:
        kind: What the backends are, for error messages ("detector backend").
        lazy_modules: Name -> module that registers that backend when imported.
        unknown: Exception raised for a name nobody registered (the stage's own class).
        load_error: Exception raised when a lazy module cannot be imported.
    """

    def __init__(self, kind: str, lazy_modules: Mapping[str, str], unknown: type[Exception],
                 load_error: type[Exception]) -> None:
        self.kind = kind
        self._lazy = dict(lazy_modules)
        self._unknown = unknown
        self._load_error = load_error
        self._factories: dict[str, Callable[[S], B]] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering a factory (taking the settings section) under ``name``."""

        def wrap(factory: F) -> F:
            self._factories[name] = factory
            return factory

        return wrap

    def names(self) -> list[str]:
        """Names :meth:`create` accepts."""
        return sorted(set(self._factories) | set(self._lazy))

    def create(self, settings: S) -> B:
        """Build the backend named by ``settings.backend``.

        Raises:
            The registry's ``unknown`` exception: no backend of that name exists.
            The registry's ``load_error`` exception: its module cannot be imported.
        """
        name = settings.backend
        if name not in self._factories and name in self._lazy:
            try:
                importlib.import_module(self._lazy[name])
            except ImportError as exc:
                raise self._load_error(f"{self.kind} {name!r} cannot be imported: {exc}") from exc
        factory = self._factories.get(name)
        if factory is None:
            raise self._unknown(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return factory(settings)
