"""wagate benchmarks: `make bench` (python -m bench)."""
