"""Data sets (see :func:`dltheory.data.load`)."""
