"""Shared foundations: validation, atomic I/O, random number generators, Gaussian expectations."""
