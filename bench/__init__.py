"""Benchmarks (not tests): they print figures and can write them to docs/performance.md."""
