"""One exception hierarchy: every error a user can cause says what is wrong and where."""

from __future__ import annotations


class StreambenchError(Exception):
    """Base class. The CLI prints ``str(error)`` as one line and exits 2."""


class SpecError(StreambenchError, ValueError):
    """A spec string (chunking, latency, fault, SUT, ...) does not parse or does not fit."""


class TranscriptError(StreambenchError):
    """A transcript or cassette file cannot be loaded: names the file, the line where known."""


class ConfigError(StreambenchError):
    """A YAML config file (case, matrix, profile, thresholds, script) is invalid."""


class OutputError(StreambenchError, OSError):
    """An output path cannot be written (a folder, read-only, full): names the path."""
