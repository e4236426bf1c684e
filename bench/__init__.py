"""Benchmarks: each module is a script (`python -m bench.NAME`) printing a JSON line per figure."""
