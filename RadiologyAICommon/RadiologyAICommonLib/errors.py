"""The one exception type for user mistakes (bad input, bad parameters, bad model files).

Its message is written for the person who can fix it: it names the file, row or parameter
and says what is expected. The CLI prints it as a single ``error:`` line and exits 2; the
Slicer widgets show it in an error dialog. Anything else that escapes is a bug.
"""

import errno


class RadiologyAIError(Exception):
    """A problem with the user's input that they can act on."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every ``finally`` runs: staging folders are removed and
    worker processes stopped, as for Ctrl-C (a KeyboardInterrupt, so code that stops on one stops on both)."""


def environment_error(exc: OSError, what: str) -> RadiologyAIError:
    """An OSError from the file system (full disk, read-only, no permission...) as a message the user can act on."""
    reasons = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENAMETOOLONG: "the path is too long",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EXDEV: "it is on another file system",
        errno.ENOENT: "it does not exist (it may have been removed meanwhile)",
    }
    reason = reasons.get(exc.errno, exc.strerror or str(exc))
    return RadiologyAIError(f"{what}: {reason}")
