"""Side-by-side timings of dlg against its peers (not tests): `python -m benchmarks --help`."""
