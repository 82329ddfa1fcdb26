"""The errors taskgrouper raises for what the user can fix: a bad config, name, file, budget.

Every one is a :class:`TaskgrouperError`, whose message names the input and the fix; the
command line prints the message and exits with status 2 (``--debug`` shows the traceback), and
lets anything else through as the bug it is. The base class derives from ``ValueError``, so
``except ValueError`` written against older versions still catches them.
"""

from __future__ import annotations

__all__ = ["InputError", "MissingRunError", "SetupError", "TaskgrouperError"]


class TaskgrouperError(ValueError):
    """Base of the errors the user can fix; the message names the input and the fix."""


class InputError(TaskgrouperError):
    """A bad value, name, option or file content."""


class SetupError(TaskgrouperError, RuntimeError):
    """The environment cannot do what was asked (Ray missing or unreachable, a start method
    the platform lacks, another process holding the folder)."""


class MissingRunError(TaskgrouperError, KeyError):
    """A run that a strategy or report needs is not in the store (run the search again)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
