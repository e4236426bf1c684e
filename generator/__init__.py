"""Batch generator: CSV exports to published neighbour lists."""
