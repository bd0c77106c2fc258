"""The fault-injection suite: the shipped workflows run by several workers while processes, PostgreSQL, Redis and
the outside services fail at seeded moments; the verdict comes from what the outside world received.

Run: `python -m bench.faults --seed 1 --runs 12 --workers 2` (or `make faults`).
"""
