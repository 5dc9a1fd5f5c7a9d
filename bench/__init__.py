"""Benchmarks (not part of the test suite): ``make bench-ingest``, ``bench-e2e``, ``bench-scaling``."""
