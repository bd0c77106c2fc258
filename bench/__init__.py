"""opsos" benchmarks."""
