"""Configuration of the reference stack: from arguments in tests, from the environment in use."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

import certifi
import httpx

from streambench.answer import ORDERS, STRUCTURED, Order, Structured
from streambench.errors import ConfigError
from streambench.reference.providers import KINDS, AnthropicMessages, OpenAIChat
from streambench.reference.store import Store

N = TypeVar("N", int, float)
DEFAULT_DB = "streambench-reference.sqlite3"


@dataclass
class ReferenceConfig:
    """Everything :func:`streambench.reference.app.create_app` needs.

    ``transport`` replaces the network for upstream calls (a ``ReplayTransport`` in tests);
    ``store`` replaces the SQLite store opened at ``db_path``.
    """

    providers: tuple[str, ...] = ("anthropic", "openai")
    anthropic_base_url: str = "https://api.anthropic.com"
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_api_key: str = ""
    openai_api_key: str = ""
    anthropic_model: str = "claude-sonnet-4-20250514"
    openai_model: str = "gpt-4o-2024-08-06"
    db_path: str = DEFAULT_DB
    seed: int = 0
    max_retry_wait_s: float = 10.0
    max_tokens: int = 4096
    timeout_s: float = 60.0
    structured: Structured = "prefill"  # how the structured part is asked for: prefill | tool
    # the order for requests that name none: a deployment whose own design is text first
    default_order: Order = "changes_first"
    transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)
    store: Store | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.default_order not in ORDERS:
            raise ConfigError(
                f"default_order (STREAMBENCH_ORDER): {self.default_order!r} is not one of"
                f" {', '.join(ORDERS)}"
            )
        if self.structured not in STRUCTURED:
            raise ConfigError(
                f"structured (STREAMBENCH_STRUCTURED): {self.structured!r} is not one of"
                f" {', '.join(STRUCTURED)}"
            )
        for kind in self.providers:
            if kind not in KINDS:
                raise ConfigError(
                    f"STREAMBENCH_PROVIDERS: unknown provider {kind!r} "
                    f"(expected some of {', '.join(KINDS)})"
                )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReferenceConfig:
        """Read ANTHROPIC_BASE_URL, OPENAI_BASE_URL, *_API_KEY, STREAMBENCH_PROVIDERS,
        STREAMBENCH_ANTHROPIC_MODEL, STREAMBENCH_OPENAI_MODEL, STREAMBENCH_DB, STREAMBENCH_SEED,
        STREAMBENCH_MAX_RETRY_WAIT_S, STREAMBENCH_STRUCTURED, STREAMBENCH_ORDER; unset ones keep
        their defaults."""
        env = os.environ if env is None else env
        defaults = cls()
        providers = env.get("STREAMBENCH_PROVIDERS")
        return cls(
            providers=(
                tuple(p.strip() for p in providers.split(",") if p.strip())
                if providers is not None
                else defaults.providers
            ),
            anthropic_base_url=env.get("ANTHROPIC_BASE_URL", defaults.anthropic_base_url),
            openai_base_url=env.get("OPENAI_BASE_URL", defaults.openai_base_url),
            anthropic_api_key=env.get("ANTHROPIC_API_KEY", ""),
            openai_api_key=env.get("OPENAI_API_KEY", ""),
            anthropic_model=env.get("STREAMBENCH_ANTHROPIC_MODEL", defaults.anthropic_model),
            openai_model=env.get("STREAMBENCH_OPENAI_MODEL", defaults.openai_model),
            db_path=env.get("STREAMBENCH_DB", defaults.db_path),
            structured=env.get("STREAMBENCH_STRUCTURED", defaults.structured),  # type: ignore[arg-type]
            default_order=env.get("STREAMBENCH_ORDER", defaults.default_order),  # type: ignore[arg-type]
            seed=_number(env, "STREAMBENCH_SEED", int, defaults.seed),
            max_retry_wait_s=_number(
                env, "STREAMBENCH_MAX_RETRY_WAIT_S", float, defaults.max_retry_wait_s
            ),
        )

    def build_providers(self) -> list[AnthropicMessages | OpenAIChat]:
        providers = []
        for kind in self.providers:
            provider_class, streaming = KINDS[kind]
            if provider_class is AnthropicMessages:
                url, key, model = (
                    self.anthropic_base_url,
                    self.anthropic_api_key,
                    self.anthropic_model,
                )
            else:
                url, key, model = self.openai_base_url, self.openai_api_key, self.openai_model
            providers.append(
                provider_class(kind, url, key, model, streaming=streaming, timeout_s=self.timeout_s)
            )
        return providers

    def api_keys(self) -> list[str]:
        """The configured provider keys (to keep them out of anything sent or logged)."""
        return [k for k in (self.anthropic_api_key, self.openai_api_key) if k]

    def http_client(self) -> httpx.AsyncClient:
        """A fresh client per request (cheap: the TLS context is built once per process)."""
        if self.transport is not None:
            return httpx.AsyncClient(transport=self.transport, timeout=self.timeout_s)
        return httpx.AsyncClient(verify=_tls_context(), timeout=self.timeout_s)


@cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def _number(env: Mapping[str, str], name: str, kind: type[N], default: N) -> N:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a {kind.__name__}") from None
