"""The one exception type for user mistakes (bad input, bad parameters, bad model files).

Its message is written for the person who can fix it: it names the file, row or parameter
and says what is expected. The CLI prints it as a single ``error:`` line and exits 2; the
Slicer widgets show it in an error dialog. Anything else that escapes is a bug.
"""


class RadiologyAIError(Exception):
    """A problem with the user's input that they can act on."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every ``finally`` runs: staging folders are removed and
    worker processes stopped, as for Ctrl-C (a KeyboardInterrupt, so code that stops on one stops on both)."""
