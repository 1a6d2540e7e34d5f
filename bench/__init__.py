"""Side-by-side benchmarks of VelociPy against its peers: `python -m bench.run` (see README.md)."""
