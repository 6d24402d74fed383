"""One exception hierarchy: every error a user can cause says what is wrong and where."""

from __future__ import annotations


class StreambenchError(Exception):
    """Base class. The CLI prints it as one line and exits 2.

    ``param`` names the library parameter the error is about (``sut_cmd``): ``str(error)`` reads
    ``sut_cmd: <detail>`` for Python callers, and the CLI names its option (``--sut-cmd``).
    """

    def __init__(self, detail: str, *, param: str | None = None) -> None:
        super().__init__(f"{param}: {detail}" if param else detail)
        self.detail = detail
        self.param = param
        # The CLI option that set ``param``, when it is not ``--<param>`` (cli.options_named).
        self.option: str | None = None

    def for_cli(self) -> str:
        """The message as the command line says it: the option instead of the parameter."""
        if self.param is None:
            return str(self)
        return f"{self.option or '--' + self.param.replace('_', '-')}: {self.detail}"


class SpecError(StreambenchError, ValueError):
    """A spec string (chunking, latency, fault, SUT, ...) does not parse or does not fit."""


class TranscriptError(StreambenchError):
    """A transcript or cassette file cannot be loaded: names the file, the line where known."""


class ConfigError(StreambenchError):
    """A YAML config file (case, matrix, profile, thresholds, script) is invalid."""


class ReplayError(StreambenchError):
    """A replay cannot be planned or delivered as asked (a plan past its end, no plan left)."""


class SutError(StreambenchError):
    """A system under test cannot be reached or started (not a bad run: that is a row)."""


class OutputError(StreambenchError, OSError):
    """An output path cannot be written (a folder, read-only, full): names the path."""
