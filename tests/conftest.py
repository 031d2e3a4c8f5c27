"""Test-session settings: compiled code is cached in a fresh folder, so tests neither read nor
fill the user's cache and every session starts cold; the IR is verified after every compiler
stage (DLG_VERIFY, inherited by the subprocesses tests start); `--update-golden` rewrites the
golden IR files in tests/golden instead of comparing with them; eager ops stay on NumPy (below)."""

import os
import tempfile

import pytest

os.environ["DLG_CACHE_DIR"] = tempfile.mkdtemp(prefix="dlg-test-cache-")
os.environ["DLG_VERIFY"] = "1"

import dlg.frontend.tiering  # noqa: E402  (after the cache folder is set)

# An eager op tiers once its NumPy runs, summed over the session, have cost 0.25 s: which test
# met a compiled op (rounding as compiled code does) would hang on the order tests run in. The
# suite keeps eager ops on NumPy; tests/frontend/test_tiering.py forces their tiers.
dlg.frontend.tiering.OP_COMPILE_AFTER_S = float("inf")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/**/*.ir from the current graphs (review the diff)")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether golden files are rewritten (`--update-golden`, or DLG_UPDATE_GOLDEN=1)."""
    return bool(request.config.getoption("--update-golden")
                or os.environ.get("DLG_UPDATE_GOLDEN") == "1")
