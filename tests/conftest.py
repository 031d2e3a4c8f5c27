"""Test-session settings: compiled code is cached in a fresh folder, so tests neither read nor
fill the user's cache and every session starts cold."""

import os
import tempfile

os.environ["DLG_CACHE_DIR"] = tempfile.mkdtemp(prefix="dlg-test-cache-")
