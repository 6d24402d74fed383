"""The provider APIs streambench knows, by name: one module of this package each.

Every table of provider knowledge elsewhere (detection, delta locators, error bodies,
renderers, fake-provider routes, recorder URLs and key variables, default models) is read from
here. Adding an API is one new module with a :class:`~streambench.providers.base.ProviderAPI`
subclass, listed in :data:`_MODULES` (or passed to :func:`register`).
"""

from __future__ import annotations

import importlib

from streambench.errors import SpecError
from streambench.providers.base import ProviderAPI

_MODULES = (
    "anthropic_messages",
    "openai_chat",
    "openai_responses",
    "google_generate",
    "generic_sse",
)
_APIS: dict[str, ProviderAPI] = {}


def register(api: ProviderAPI) -> ProviderAPI:
    """Add (or replace) a provider API; detection tries APIs in registration order."""
    _APIS[api.name] = api
    return api


for _module in _MODULES:
    register(importlib.import_module(f"streambench.providers.{_module}").API)


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
