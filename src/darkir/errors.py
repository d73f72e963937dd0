"""Exceptions with messages meant for users: each names the file, key or path at fault."""


class DarkIRError(Exception):
    """Base class for errors the CLI reports as one clear line instead of a traceback."""


class ConfigError(DarkIRError, ValueError):
    """An options file or model config is invalid (unknown key, wrong type, missing path)."""


class CheckpointError(DarkIRError, RuntimeError):
    """A checkpoint cannot be read or does not fit the model it is loaded into."""


class DarkIRWarning(UserWarning):
    """A setting that is accepted but silently changes nothing; the CLI prints it as one line."""
