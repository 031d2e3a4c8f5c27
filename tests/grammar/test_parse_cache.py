"""The parser's tables and the parsed prelude come from dlg's cache folder (disk_cache.py) when
an entry made from the same grammar, prelude and parser is there: the cached prelude is the
parsed one, a damaged entry or tables file is made again, and with the cache off nothing is
written."""

from __future__ import annotations

from dlg.grammar import loader, parser

SOURCE = "model M {\n    input x: f32[N, 3]\n    layer fc = Linear(3, 2)\n    output y = fc(x)\n}\n"


def _prelude():
    return loader.prelude.__wrapped__()  # past the per-process cache


def test_the_cached_prelude_is_the_parsed_one(monkeypatch, tmp_path):
    monkeypatch.setenv("DLG_CACHE_DIR", str(tmp_path))
    parsed = _prelude()
    (entry,) = tmp_path.glob("prelude-*.pickle")
    assert _prelude() == parsed == parser.parse(loader.PRELUDE.read_text(),
                                                loader.PRELUDE.name)
    entry.write_bytes(entry.read_bytes()[:-20])  # damaged: parsed and stored again
    assert _prelude() == parsed
    assert _prelude() == parsed and len(list(tmp_path.glob("prelude-*.pickle"))) == 1


def test_parser_tables_are_cached_and_a_damaged_file_is_rebuilt(monkeypatch, tmp_path):
    monkeypatch.setenv("DLG_CACHE_DIR", str(tmp_path))
    want = parser._lark.__wrapped__().parse(SOURCE)
    (tables,) = tmp_path.glob("lark-*")
    assert parser._lark.__wrapped__().parse(SOURCE) == want  # from the file
    tables.write_bytes(b"not tables")
    assert parser._lark.__wrapped__().parse(SOURCE) == want


def test_with_the_cache_off_nothing_is_written(monkeypatch, tmp_path):
    monkeypatch.setenv("DLG_CACHE_DIR", "off")
    monkeypatch.chdir(tmp_path)
    parser._lark.__wrapped__().parse(SOURCE)
    _prelude()
    assert list(tmp_path.iterdir()) == []
