"""JSON carried as streamed text: find it, and rewrite its whitespace or escapes in one pass that
says where every source character went (so the rewrite can be cut at the old delta bounds).

The text may be a fragment: the continuation of a prefill (``{"code_edits": [`` ... ) or a
stream cut short. :func:`json_start_state` decides whether a text is JSON at all.
"""

from __future__ import annotations

import re

_LITERAL = set("0123456789-+.eEtrufalsn")
_STRUCTURAL = set("{}[],:")
_ESCAPE_LEN = 6  # \uXXXX
_EDITS_KEY = re.compile(r'"[^"\\]*edits"\s*:\s*\[')


def _invalid_outside(text: str, in_string: bool) -> tuple[int, int]:
    """(characters that cannot stand outside a JSON string, brackets seen)."""
    invalid = brackets = depth = 0
    for ch, inside in zip(text, string_state(text, in_string), strict=True):
        if inside:
            continue
        if ch in _STRUCTURAL:
            brackets += ch in "{}[]"
            opened = depth > 0
            depth += {"{": 1, "[": 1, "}": -1, "]": -1}.get(ch, 0)
            if opened and depth == 0:
                break  # the top-level value closed: what follows is prose around it
        elif not (ch.isspace() or ch in _LITERAL):
            invalid += 1
    return invalid, brackets


def json_start_state(text: str) -> bool | None:
    """Whether ``text`` (a JSON fragment) starts inside a string (True) or outside (False);
    None when it is not JSON (prose, code, a bare list of numbers)."""
    for in_string in (False, True):
        invalid, brackets = _invalid_outside(text, in_string)
        if invalid == 0 and brackets > 0:
            return in_string
    return None


def _ascii_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _unescape_at(text: str, i: int) -> tuple[str, int] | None:
    """The raw character of a ``\\uXXXX`` escape (or surrogate pair) at ``i``, and its length;
    None when it must stay escaped (control characters, quote, backslash, lone surrogates)."""
    hex_digits = text[i + 2 : i + _ESCAPE_LEN]
    if len(hex_digits) < 4 or not all(c in "0123456789abcdefABCDEF" for c in hex_digits):
        return None
    code = int(hex_digits, 16)
    if 0xD800 <= code < 0xDC00:
        low = text[i + _ESCAPE_LEN : i + 2 * _ESCAPE_LEN]
        if not low.startswith("\\u") or len(low) < _ESCAPE_LEN:
            return None
        try:
            low_code = int(low[2:], 16)
        except ValueError:
            return None
        if not 0xDC00 <= low_code < 0xE000:
            return None
        pair = 0x10000 + ((code - 0xD800) << 10) + (low_code - 0xDC00)
        return chr(pair), 2 * _ESCAPE_LEN
    if code < 0x20 or code in (0x22, 0x5C) or 0xDC00 <= code < 0xE000:
        return None
    return chr(code), _ESCAPE_LEN


def rewrite(
    text: str,
    start: int,
    *,
    in_string: bool = False,
    style: str | None = None,
    escape: str | None = None,
) -> list[str]:
    """What each character of ``text`` becomes (one string per source character; characters
    before ``start``, a prefill, are kept). ``style``: compact | spaced | newlines whitespace
    between tokens; ``escape``: ascii (non-ASCII in strings as ``\\uXXXX``) | raw (``\\uXXXX``
    escapes as the characters). The text after the top-level value closes is kept."""
    out: list[str] = []
    depth = 0
    min_depth = 0
    escaped = False
    closed = False
    skip = 0
    probe_in = in_string
    probe_escaped = False
    for ch in text:  # the lowest depth reached: a fragment may close containers it never opened
        if probe_in:
            probe_escaped = not probe_escaped and ch == "\\"
            probe_in = probe_escaped or ch != '"'
            continue
        if ch == '"':
            probe_in = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            min_depth = min(min_depth, depth)
    depth = -min_depth
    previous = ""
    for i, ch in enumerate(text):
        keep = i < start or closed
        if skip:
            skip -= 1
            out.append("")
            continue
        if in_string:
            emitted = ch
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
                raw = _unescape_at(text, i) if escape == "raw" and not keep else None
                if text[i + 1 : i + 2] == "u" and raw is not None:
                    emitted, skip = raw[0], raw[1] - 1
                    escaped = False
            elif ch == '"':
                in_string = False
            elif escape == "ascii" and ord(ch) > 0x7F and not keep:
                emitted = _ascii_escape(ch)
            out.append(emitted)
            continue
        if ch == '"':
            in_string = True
            previous = ch
            out.append(ch)
            continue
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if keep or style is None:
            out.append(ch)
        elif ch.isspace():
            out.append("")
        else:
            out.append(_styled(ch, style, depth, previous, _next_token(text, i + 1)))
        if not ch.isspace():
            previous = ch
        if ch in "}]" and depth == 0 and i >= start:
            closed = True
    return out


def _next_token(text: str, i: int) -> str:
    while i < len(text) and text[i].isspace():
        i += 1
    return text[i] if i < len(text) else ""


def _styled(ch: str, style: str, depth: int, previous: str, following: str) -> str:
    """``ch`` (outside strings, not whitespace) in ``style``; ``depth`` is after ``ch``."""
    if style == "compact":
        return ch
    if style == "spaced":
        return {",": ", ", ":": ": "}.get(ch, ch)
    indent = "\n" + "  " * depth
    if ch in "{[":
        return ch if following in ("}", "]") else ch + indent
    if ch in "}]":
        return ch if previous in ("{", "[") else indent + ch
    return {",": "," + indent, ":": ": "}.get(ch, ch)


def string_state(text: str, in_string: bool = False) -> list[bool]:
    """For each character of ``text``: whether it lies inside a JSON string (quotes included)."""
    inside: list[bool] = []
    escaped = False
    for ch in text:
        if in_string:
            inside.append(True)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        in_string = ch == '"'
        inside.append(in_string)
    return inside


def json_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every balanced ``{...}`` / ``[...]`` in a piece of JSON text
    (strings skipped; brackets opened before the piece or closed after it are ignored)."""
    spans: list[tuple[int, int]] = []
    stack: list[tuple[str, int]] = []
    for i, (ch, inside) in enumerate(zip(text, string_state(text), strict=True)):
        if inside:
            continue
        if ch in "{[":
            stack.append(("}" if ch == "{" else "]", i))
        elif ch in "}]":
            if stack and stack[-1][0] == ch:
                spans.append((stack.pop()[1], i + 1))
            else:
                stack.clear()
    return spans


def edits_array(text: str, in_string: bool = False) -> tuple[int, int] | None:
    """``(start, end)`` of the contents of the first array under a key ending in ``edits``
    (between its brackets; ``end`` is the text's end when the array is not closed)."""
    inside = string_state(text, in_string)
    for m in _EDITS_KEY.finditer(text):
        bracket = m.end() - 1
        if not inside[bracket] and inside[m.start()]:
            return bracket + 1, _matching_close(text, inside, bracket)
    return None


def _matching_close(text: str, inside: list[bool], opener: int) -> int:
    depth = 0
    for i in range(opener, len(text)):
        if inside[i]:
            continue
        if text[i] in "[{":
            depth += 1
        elif text[i] in "]}":
            depth -= 1
            if depth == 0:
                return i
    return len(text)
