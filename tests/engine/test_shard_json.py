"""Shard files: what the fast encoder writes reads back as it was, and every JSON the stdlib wrote still reads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import CA_NAMES, csr_pem, make_csr, run_cli

from tui_ca.engine import CertificateAuthority
from tui_ca.engine.reader import CAReader
from tui_ca.engine.store import files
from tui_ca.engine.store.files import decode_json, encode_json

pytestmark = pytest.mark.tinydb_only


@pytest.fixture(params=["stdlib", "orjson"], autouse=True)
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test with either encoder: a process switches to orjson once it has handled enough JSON."""
    monkeypatch.setattr(files, "_orjson", None)
    monkeypatch.setattr(files, "_json_bytes", 0 if request.param == "stdlib" else files._FAST_JSON_AFTER + 1)
    if request.param == "stdlib":
        monkeypatch.delitem(sys.modules, "orjson", raising=False)  # as in a process that never loaded it
    return request.param


SHAPES = [
    {"1": {"requester": "plain", "n": 3, "ok": True, "none": None, "f": 1.5}},
    {"2": {"requester": "Jürgen 東京 \u202e\x1b[31m", "list": [1, "two", {"three": 3}]}},
    {"3": {"big": 2**80, "negative": -(2**70)}},  # beyond 64 bits: the stdlib's path
    {"4": {"lone": "\ud800 surrogate"}},  # not UTF-8: the stdlib escapes it
]


@pytest.mark.parametrize("data", SHAPES, ids=["plain", "unicode-and-controls", "big-integers", "lone-surrogate"])
def test_encoded_shards_read_back_unchanged(data: dict) -> None:
    raw = encode_json(data)
    assert decode_json(raw) == data
    assert json.loads(raw) == data  # still plain JSON, readable by any tool


def test_integer_keys_are_written_as_json_writes_them(codec: str) -> None:
    assert decode_json(encode_json({7: "x"})) == {"7": "x"}
    assert (files._orjson is not None) == (codec == "orjson")  # the codec under test is the one used


def test_a_process_switches_after_enough_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_orjson", None)
    monkeypatch.setattr(files, "_json_bytes", 0)
    monkeypatch.delitem(sys.modules, "orjson", raising=False)
    shard = {str(i): {"requester": f"r{i}", "pem": "x" * 1000} for i in range(256)}
    while files._orjson is None:
        assert decode_json(encode_json(shard)) == shard
        assert files._json_bytes <= files._FAST_JSON_AFTER + 2 * len(encode_json(shard))
    assert decode_json(encode_json(shard)) == shard


def test_a_process_that_has_orjson_loaded_uses_it_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import orjson

    monkeypatch.setattr(files, "_orjson", None)
    monkeypatch.setattr(files, "_json_bytes", 0)
    monkeypatch.setitem(sys.modules, "orjson", orjson)
    assert decode_json(encode_json({"1": {"n": 1}})) == {"1": {"n": 1}}
    assert files._orjson is orjson


def test_stdlib_written_files_still_read() -> None:
    data = {"5": {"name": "é", "big": 2**100}}
    assert decode_json(json.dumps(data).encode()) == data
    assert decode_json(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()) == data


@pytest.mark.parametrize("raw", [b"{", b"NaN]", b"\xff\xfe{}", b'{"a": 1,}'])
def test_what_is_not_json_stays_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_json(raw)


def test_unicode_requester_round_trips_through_a_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ca = CertificateAuthority(home)
    ca.init(CA_NAMES)
    result = ca.submit(csr_pem(make_csr(cn="unicode")), requester="ünïcødé-東京")
    assert CAReader(home).request(result.request.id).requester == "ünïcødé-東京"
    listed = run_cli(home, "list", "--json")
    assert listed.returncode == 0
    assert "ünïcødé-東京" in [r["requester"] for r in json.loads(listed.stdout)]
    assert run_cli(home, "check").returncode == 0
