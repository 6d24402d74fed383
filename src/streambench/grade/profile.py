"""Profiles: which rules run, with which parameters. A user's own streaming contract, in YAML.

default: on            # rules not listed: on (every rule on by default) or off
rules:
  text-before-changes: off        # a text-first UI does not mind
  duplicate-after-failover: {min_overlap_chars: 12}
  escape-leak: on
  jank: {max_jump_chars: 40}      # off by default: a profile turns it on

``--profile smooth`` (a name, not a file) loads a profile bundled in streambench/data/profiles.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

from streambench._yaml import load_yaml
from streambench.errors import ConfigError
from streambench.grade.rules import RULES

Profile = dict[str, dict[str, Any]]  # selected rule slug -> parameters


BUNDLED = resources.files("streambench") / "data" / "profiles"


def default_profile() -> Profile:
    """Every rule that is on by default, with its default parameters."""
    return {slug: {} for slug, rule in RULES.items() if rule.on_by_default}


def bundled_profiles() -> list[str]:
    """Names of the profiles shipped with streambench (``--profile NAME``)."""
    return sorted(
        p.name.removesuffix(".yaml") for p in BUNDLED.iterdir() if p.name.endswith(".yaml")
    )


def profile_path(value: str | Path) -> Path:
    """``value`` as a file, or the bundled profile of that name when no such file exists."""
    path = Path(value)
    if path.exists() or path.suffix:
        return path
    bundled = BUNDLED / f"{path.name}.yaml"
    if not bundled.is_file():
        names = ", ".join(bundled_profiles())
        raise ConfigError(
            f"profile {str(value)!r}: no such file and no bundled profile (bundled: {names})"
        )
    return Path(str(bundled))


def _switch(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("on", "off"):
        return value == "on"
    raise ConfigError(f"{where}: expected on, off, true, false or a mapping, got {value!r}")


def _parameter(value: Any, default: Any, where: str) -> Any:
    """A rule parameter of the default's type; numbers are finite and at least 1 when the
    default is a whole number (a count), at least 0 otherwise."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int | float):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(default, int) and not isinstance(value, int):
            number = False
        if not number or not math.isfinite(value):
            kind = "a whole number" if isinstance(default, int) else "a number"
            raise ConfigError(f"{where}: expected {kind}, got {value!r}")
        least = 1 if isinstance(default, int) else 0
        if value < least:
            raise ConfigError(f"{where}: {value!r} is below {least}")
        return value
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def parse_profile(data: Any, source: str) -> Profile:
    """Validate a parsed profile document; ``source`` names it in errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a profile is a mapping with 'rules' and 'default'")
    unknown = sorted(set(data) - {"rules", "default"})
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known: default, rules)")
    default_on = _switch(data.get("default", "on"), f"{source}: default")
    rules = data.get("rules") or {}
    if not isinstance(rules, dict):
        raise ConfigError(f"{source}: 'rules' must map rule slugs to on/off or parameters")
    profile: Profile = default_profile() if default_on else {}
    for slug, value in rules.items():
        where = f"{source}: rules.{slug}"
        if slug not in RULES:
            raise ConfigError(f"{where}: unknown rule (known: {', '.join(RULES)})")
        if isinstance(value, dict):
            extra = sorted(set(value) - set(RULES[slug].defaults))
            if extra:
                known = ", ".join(RULES[slug].defaults) or "none"
                raise ConfigError(f"{where}: unknown parameter {extra[0]!r} (known: {known})")
            profile[slug] = {
                k: _parameter(v, RULES[slug].defaults[k], f"{where}.{k}") for k, v in value.items()
            }
        elif _switch(value, where):
            profile[slug] = {}
        else:
            profile.pop(slug, None)
    return profile


def load_profile(path: str | Path | None) -> Profile:
    """The profile in ``path``; every rule with its defaults when ``path`` is None."""
    if path is None:
        return default_profile()
    path = profile_path(path)
    return parse_profile(load_yaml(path, "profile"), str(path))
