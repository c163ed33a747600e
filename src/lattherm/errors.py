"""The one family of errors a user can fix by changing an input.

Every check of a config, system file, checkpoint, cluster expansion, table or command-line value
raises a :class:`LatthermError` (a ``ValueError``) whose message names the offending field or file
and its value. The command line prints such an error as one line, ``error: <message>``, and exits
with status 1; any other exception is a bug and keeps its traceback.
"""


class LatthermError(ValueError):
    """An input the user can fix: the message names the field or file and the offending value."""


class InputFileError(LatthermError):
    """An input file is missing, unreadable, empty or malformed."""
