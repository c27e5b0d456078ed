"""Exit codes of the ``dltheory`` command line, one per kind of failure (see docs/reliability.md).

| code | name | meaning |
|---|---|---|
| 0 | ``OK`` | success (an experiment whose claims disagree with theory still succeeded: that is a result) |
| 1 | ``EXPERIMENT_FAILED`` | an experiment raised an error or reported itself failed |
| 2 | ``BAD_INPUT`` | invalid option or argument, unknown name, existing run without ``--resume`` |
| 3 | ``MISSING_DATA`` | a data set is neither on the search path nor downloadable |
| 4 | ``DAMAGED_RUN`` | a file of a run directory cannot be read back and cannot be recomputed |
| 5 | ``RESOURCE`` | a write failed (disk full, file-size or quota limit, I/O error); earlier files intact |
| 70 | ``INTERNAL`` | an unexpected error (a bug: please report it) |
| 130 | ``INTERRUPTED`` | interrupted (Ctrl-C or SIGTERM); the run resumes with ``--resume`` |

``dltheory reproduce`` runs every experiment and writes the report, then exits with the largest code of
its experiments (so 5 > 4 > 3 > 1: the most fundamental problem wins).
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit status of ``dltheory`` commands."""

    OK = 0
    EXPERIMENT_FAILED = 1
    BAD_INPUT = 2
    MISSING_DATA = 3
    DAMAGED_RUN = 4
    RESOURCE = 5
    INTERNAL = 70
    INTERRUPTED = 130


#: errno values that mean "the machine could not store what we wrote", not "the program is wrong"
RESOURCE_ERRNOS = frozenset(
    code
    for code in (
        errno.ENOSPC,
        errno.EFBIG,
        errno.EDQUOT,
        errno.EIO,
        errno.EROFS,
        errno.ENOMEM,
    )
)

#: the failure kinds recorded by :func:`dltheory.experiments.execute.run_experiment`, with their codes
FAILURE_CODES = {
    "experiment": ExitCode.EXPERIMENT_FAILED,
    "input": ExitCode.BAD_INPUT,
    "data": ExitCode.MISSING_DATA,
    "damaged": ExitCode.DAMAGED_RUN,
    "resource": ExitCode.RESOURCE,
}


def is_resource_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a resource failure: an OSError whose errno
    is in :data:`RESOURCE_ERRNOS`, or a MemoryError."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError):
            return True
        if isinstance(current, OSError) and current.errno in RESOURCE_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False
