"""One hierarchy of errors for the whole library.

Only ``autopeft.cli`` turns these into exit codes and one-line messages, and only
``api`` turns them into HTTP responses. Every message names the offending value.
"""

from __future__ import annotations


class AutoPeftError(Exception):
    """Base class of every error autopeft raises on purpose.

    ``public``: the message without anything read from the input files (a label value, a target),
    for errors that leave the machine: a worker reports only this. ``str(err)`` is the whole
    message, for the person at this machine. Without ``public`` the two are the same.
    """

    def __init__(self, *args: object, public: str | None = None) -> None:
        super().__init__(*args)
        self.public = public

    def public_message(self) -> str:
        """The message to send elsewhere: no content of any file beyond column names."""
        return self.public if self.public is not None else str(self)


class ConfigError(AutoPeftError, ValueError):
    """A PEFT configuration is malformed or does not fit the model."""


class SpaceError(AutoPeftError, ValueError):
    """A search space is malformed, or a configuration lies outside it."""


class ModelError(AutoPeftError):
    """A model directory is missing, unreadable, or of an unsupported architecture."""


class TaskError(AutoPeftError, ValueError):
    """A task description is malformed or its data files do not match it."""


class TrainingError(AutoPeftError):
    """A trial could not be trained (non-finite loss, out of memory, ...)."""


class OptimizerError(AutoPeftError, ValueError):
    """The optimiser was given inputs it cannot work with."""


class ExportError(AutoPeftError):
    """A trained configuration cannot be exported in the form asked for (the message says why)."""


class LaunchError(AutoPeftError, ValueError):
    """Workers cannot be launched as asked (a bad option, or the scheduler refused the job)."""
