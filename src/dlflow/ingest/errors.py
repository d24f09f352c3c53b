"""Errors raised while obtaining and reading raw data files.

Both carry a message that names the file (path or URL), says what is wrong
and how to fix it; they differ in whose fault the problem is.
"""


class DataSourceError(RuntimeError):
    """A file could not be obtained or verified: no route to it (offline, no
    mirror), every URL failed, or its checksum does not match the published one."""


class DataValidationError(ValueError):
    """A file was obtained but its contents are malformed (bad header,
    truncated payload, inconsistent image/label pair, ...)."""
