"""Keep BLAS single-threaded in these eigendecomposition-heavy tests: the root conftest sets
OMP_NUM_THREADS only after numpy is imported, and a threaded eigh on a loaded 2-core machine is an
order of magnitude slower."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _single_blas_thread():
    with threadpool_limits(limits=1):
        yield
