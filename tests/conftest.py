"""Test-session settings: compiled code is cached in a fresh folder, so tests neither read nor
fill the user's cache and every session starts cold; the IR is verified after every compiler
stage (DLG_VERIFY, inherited by the subprocesses tests start); `--update-golden` rewrites the
golden IR files in tests/golden instead of comparing with them."""

import os
import tempfile

import pytest

os.environ["DLG_CACHE_DIR"] = tempfile.mkdtemp(prefix="dlg-test-cache-")
os.environ["DLG_VERIFY"] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/**/*.ir from the current graphs (review the diff)")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether golden files are rewritten (`--update-golden`, or DLG_UPDATE_GOLDEN=1)."""
    return bool(request.config.getoption("--update-golden")
                or os.environ.get("DLG_UPDATE_GOLDEN") == "1")
