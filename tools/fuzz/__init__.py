"""Fuzz campaigns at scale (issue 13): `python -m tools.fuzz {parse,graphs,nn} --cases N`.
The generators and checks live here so that tests/fuzz runs them under `pytest -m fuzz` and the
normal suite replays their regressions."""
