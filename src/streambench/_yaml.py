"""Reading the YAML files a user hands in (matrices, cases, thresholds, profiles, scripts,
request bodies, redaction configs): any failure is one ConfigError line naming the file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from streambench.errors import ConfigError

# libyaml's safe loader when PyYAML was built with it: the default matrix's case files parsed
# in pure Python were half the cost of checking the matrix before its first run.
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path, what: str) -> Any:
    """The YAML document in ``path``, a ``what`` ("matrix", "thresholds", ...) for messages."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file() and not path.is_dir():
            raise ConfigError(f"{path}: cannot read {what}: not a regular file")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start}"
        raise ConfigError(f"{path}: cannot read {what}: not UTF-8 text ({where})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError:
        pass  # the message (and its line) as PyYAML's own parser words it, libyaml's differ
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {str(exc).splitlines()[0]}") from None


JSON_NODE_LIMIT = 1_000_000  # aliases can make a small file a huge tree (billion laughs)


def check_json(value: Any, where: str) -> None:
    """Raise a ConfigError naming ``where`` unless ``value`` is plain JSON data (no dates,
    binary, sets, non-string keys, inf/nan), of at most :data:`JSON_NODE_LIMIT` nodes."""
    budget = JSON_NODE_LIMIT
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, at = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(f"{where}: more than {JSON_NODE_LIMIT:,} values (aliases expanding?)")
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ConfigError(f"{at}: key {key!r} is not a string")
                stack.append((child, f"{at}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{at}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"{at}: {item} is not a JSON number")
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise ConfigError(f"{at}: a YAML {type(item).__name__} is not JSON data")
