"""Benchmarks (`make bench` runs `python -m bench`); figures are printed and written to bench/out.

Performance is measured here, never asserted in tests.
"""
