"""Errors raised while obtaining and reading raw data files.

Both carry a message that names the file (path or URL), says what is wrong
and how to fix it; they differ in whose fault the problem is.
"""

from __future__ import annotations


class DataSourceError(RuntimeError):
    """A file could not be obtained or verified: no route to it (offline, no
    mirror), every URL failed, or its checksum does not match the published one."""


class DataValidationError(ValueError):
    """A file was obtained but its contents are malformed (bad header,
    truncated payload, inconsistent image/label pair, ...)."""


class UndecodableTextError(DataValidationError):
    """Text that the declared encoding cannot decode. ``suggestion`` is an encoding that
    would decode it (None when none is evident); :meth:`with_setting` words the fix in
    terms of the setting a user changes (a dataset's argument, or a runtime parameter)."""

    def __init__(self, problem: str, suggestion: str | None = None, reason: str = "", setting: str = "encoding") -> None:
        self.problem, self.suggestion, self.reason, self.setting = problem, suggestion, reason, setting
        super().__init__(f"{problem} {self.advice(setting)}")

    def advice(self, setting: str) -> str:
        if self.suggestion is None:
            return f"Use {setting}=<the file's real encoding>; latin-1 decodes any bytes."
        return f"{self.reason}: use {setting}={self.suggestion}."

    def with_setting(self, setting: str) -> UndecodableTextError:
        """The same error, telling the user to change ``setting`` (e.g. ``--params user_corpus_encoding``)."""
        return UndecodableTextError(self.problem, self.suggestion, self.reason, setting)
