"""Module-level sweep cells (a process pool or Ray must be able to import them)."""

import math
import os


def square_or_fail(x, fail=False):
    if fail:
        raise RuntimeError(f"cell x={x} failed on purpose")
    return {"square": x * x, "pid": os.getpid()}


def log_of(x):
    return {"log": math.log(x)}
