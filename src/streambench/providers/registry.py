"""The provider APIs streambench knows, by name: one module of this package each.

Every table of provider knowledge elsewhere (detection, delta locators, error bodies,
renderers, fake-provider routes, recorder URLs and key variables, default models) is read from
here. Adding an API is one new module in this package whose ``API`` is a
:class:`~streambench.providers.base.ProviderAPI`: the registry finds it (every module on the
package's path, in name order; tests/test_provider_module.py adds one from outside), and
nothing else needs to change. Code that builds APIs at run time can :func:`register` them.
"""

from __future__ import annotations

import importlib
import pkgutil

import streambench.providers as _package
from streambench.errors import SpecError
from streambench.providers.base import ProviderAPI

# The package's modules that are not an API: the protocol, this registry, the derived tables.
_SHARED = frozenset({"apis", "base", "registry"})
_APIS: dict[str, ProviderAPI] = {}


def register(api: ProviderAPI) -> ProviderAPI:
    """Add (or replace) a provider API; detection tries APIs in registration order."""
    _APIS[api.name] = api
    return api


def _discover() -> None:
    """Register the ``API`` of every module of the package (its whole ``__path__``)."""
    for module in sorted(m.name for m in pkgutil.iter_modules(_package.__path__)):
        if module not in _SHARED and not module.startswith("_"):
            api = importlib.import_module(f"{_package.__name__}.{module}").API
            if not isinstance(api, ProviderAPI):
                raise TypeError(f"streambench.providers.{module}.API is not a ProviderAPI")
            register(api)


_discover()


def api_names() -> tuple[str, ...]:
    """Every registered API, in detection order (``generic-sse`` last)."""
    names = [name for name in _APIS if name != "generic-sse"]
    return (*names, "generic-sse")


def get(name: str) -> ProviderAPI:
    """The API called ``name``; unknown names raise :class:`SpecError` listing the known ones."""
    try:
        return _APIS[name]
    except KeyError:
        raise SpecError(f"unknown api {name!r}: expected one of {', '.join(api_names())}") from None


def lookup(name: str) -> ProviderAPI:
    """The API called ``name``, or generic-sse for a name no module speaks."""
    return _APIS.get(name) or _APIS["generic-sse"]


def renderable() -> tuple[str, ...]:
    """APIs with a renderer (what synth and the fake provider can speak)."""
    return tuple(name for name in api_names() if type(_APIS[name]).render is not ProviderAPI.render)
