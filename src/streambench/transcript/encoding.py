"""HTTP content decoding (gzip, deflate, br) with a cap on the decoded size.

One decoder for every place a compressed body can arrive: the recorder, the proxy, cassette
import and ``scan``. A body that cannot be decoded (unknown coding, corrupt data, ``br``
without the brotli package, above the cap) is reported, never passed on still compressed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

DECODED_LIMIT_BYTES = 256 * 1024 * 1024  # a gzip bomb stops here, not at MemoryError
_MAGIC = {b"\x1f\x8b": "gzip"}


@dataclass(frozen=True)
class Decoded:
    """A decoded body: each input chunk's decoded bytes (lengths per chunk), or why not."""

    pieces: list[bytes]
    error: str | None = None

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)


def codings(headers: dict[str, str]) -> list[str]:
    """The content codings of ``headers`` in the order they were applied (``identity`` dropped)."""
    value = next((v for k, v in headers.items() if k.lower() == "content-encoding"), "")
    return [
        c.strip().lower() for c in value.split(",") if c.strip().lower() not in ("", "identity")
    ]


def _decompressor(coding: str, first: bytes) -> Any:
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if coding == "deflate":
        # RFC 9110 deflate is zlib-wrapped; some servers send it raw.
        raw = not first or (first[0] & 0x0F) != 8
        return zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    if coding == "br":
        try:
            import brotli  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError:
            raise ValueError("br needs the brotli package (pip install brotli)") from None
        return brotli.Decompressor()
    raise ValueError(f"unknown content-encoding {coding!r}")


def _decode_once(
    coding: str, pieces: list[bytes], budget: int, complete: bool
) -> tuple[list[bytes], int]:
    first = next((p for p in pieces if p), b"")
    decoder = _decompressor(coding, first)
    out: list[bytes] = []
    for piece in pieces:
        if hasattr(decoder, "unconsumed_tail"):  # zlib: bounded output per call
            data = decoder.decompress(piece, budget + 1)
            if decoder.unconsumed_tail:
                raise OverflowError
        else:
            data = decoder.process(piece)
        budget -= len(data)
        if budget < 0:
            raise OverflowError
        out.append(data)
    if hasattr(decoder, "flush"):
        tail = decoder.flush()
        budget -= len(tail)
        if budget < 0:
            raise OverflowError
        if tail and out:
            out[-1] += tail
    # A body known to be whole must end its compressed stream; one cut short keeps its prefix.
    if complete and first and hasattr(decoder, "eof") and not decoder.eof:
        raise ValueError("the compressed data is cut short or corrupt")
    return out, budget


def decode(
    headers: dict[str, str],
    pieces: list[bytes],
    limit_bytes: int | None = None,
    complete: bool = True,
) -> Decoded:
    """Undo the body's content codings chunk by chunk, so each chunk keeps its decoded bytes;
    at most ``limit_bytes`` (default :data:`DECODED_LIMIT_BYTES`) come out. ``complete``: the
    body is whole (else a stream cut short, whose decodable prefix is kept)."""
    limit_bytes = DECODED_LIMIT_BYTES if limit_bytes is None else limit_bytes
    budget = limit_bytes
    try:
        for coding in reversed(codings(headers)):
            pieces, budget = _decode_once(coding, pieces, budget, complete)
    except OverflowError:
        return Decoded([], f"decoded body is over {limit_bytes:,} bytes")
    except (ValueError, zlib.error) as exc:
        return Decoded([], f"body cannot be decoded: {exc}")
    except Exception as exc:  # brotli raises its own error type
        return Decoded([], f"body cannot be decoded: {type(exc).__name__}")
    return Decoded(pieces)


def sniff(body: bytes) -> str | None:
    """The coding a body starts with when no header says so (gzip's magic bytes), else None."""
    return _MAGIC.get(body[:2])


def without_coding(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` of the decoded body: no content-encoding, no (compressed) content-length."""
    return {
        k: v for k, v in headers.items() if k.lower() not in ("content-encoding", "content-length")
    }
