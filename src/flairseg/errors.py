"""The project's exception family: errors a user can fix, each with a one-line message.

The CLI turns any of these into ``flairseg: error: <message>`` and a non-zero exit.
"""


class FlairsegError(Exception):
    """Base of every error the user can fix; the message is one line saying what and how."""


class InputError(FlairsegError):
    """A file, folder or array given to flairseg is missing, malformed or inconsistent."""


class ConfigError(FlairsegError):
    """An option or configuration value is invalid."""


class WeightsError(FlairsegError):
    """A checkpoint or released model is missing, corrupt or incompatible."""
