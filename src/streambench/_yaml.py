"""Reading the YAML files a user hands in (matrices, cases, thresholds, profiles, scripts,
request bodies, redaction configs): any failure is one ConfigError line naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streambench.errors import ConfigError


def load_yaml(path: str | Path, what: str) -> Any:
    """The YAML document in ``path``, a ``what`` ("matrix", "thresholds", ...) for messages."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {str(exc).splitlines()[0]}") from None
