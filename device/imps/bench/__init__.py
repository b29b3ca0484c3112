"""Benchmarks and the soak: the figures in docs/benchmarks.md and docs/reliability.md."""
