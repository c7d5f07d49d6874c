"""The signed model-records format: what it accepts, and why it refuses the rest."""
import os
import stat
import threading

import pytest
import torch

from app.settings import Settings
from tables.wire.updates import (KEY_FILE, UpdateRecord, decode, encode, encode_command, encode_version,
                                read_command, read_json, read_version, signing_key, valid_records)
from models.errors import SettingsError, ValidationError
from models.online.versions import Version

KEY = b"k" * 32


def version_record(number: int = 7) -> tuple[bytes, list[tuple[str, bytes]]]:
    version = Version(number=number, parent=number - 1, created=1.0, row_ids=["a"], rows=torch.ones(1, 4))
    return encode_version(version, KEY)


def refused(value, headers, key=KEY) -> str:
    with pytest.raises(ValidationError) as info:
        decode(value, headers, key)
    return info.value.reason


def test_a_signed_version_round_trips():
    value, headers = version_record(7)
    assert [name for name, _ in headers] == ["type", "version", "signature"]
    record = decode(value, headers, KEY)
    assert (record.kind, record.version) == ("version", 7)
    version = read_version(record)
    assert version.number == 7 and version.row_ids == ["a"] and torch.equal(version.rows, torch.ones(1, 4))


def test_decisions_and_commands_round_trip():
    value, headers = encode(UpdateRecord("decision", 3, b'{"reason": "r"}'), KEY)
    assert read_json(decode(value, headers, KEY)) == {"reason": "r"}
    command = read_command(decode(*encode_command("rollback", 2, KEY, now=5.0), KEY))
    assert (command.action, command.version, command.issued) == ("rollback", 2, 5.0)


def test_unsigned_records_are_refused():
    value, headers = version_record()
    assert "not signed" in refused(value, headers[:2])
    assert "not signed" in refused(b"{}", [])
    assert "not signed" in refused(b"{}", None)


def test_a_forged_payload_is_refused():
    value, headers = version_record()
    assert "signature does not match" in refused(value[:-1] + bytes([value[-1] ^ 1]), headers)


def test_a_forged_version_header_is_refused():
    value, headers = version_record(7)
    forged = [(k, b"8" if k == "version" else v) for k, v in headers]
    assert "signature does not match" in refused(value, forged)
    forged_kind = [(k, b"rollback" if k == "type" else v) for k, v in headers]
    assert "signature does not match" in refused(value, forged_kind)


def test_a_record_signed_with_another_key_is_refused():
    value, headers = version_record()
    assert "signature does not match" in refused(value, headers, key=b"x" * 32)


@pytest.mark.parametrize("headers, reason", [
    ([("type", b"version"), ("version", b"1"), ("signature", b"00"), ("extra", b"1")], "unknown header 'extra'"),
    ([("type", b"\xff\xfe"), ("version", b"1"), ("signature", b"00")], "header 'type' is not UTF-8"),
    ([("type", b"version"), ("version", b"1"), ("version", b"2"), ("signature", b"00")], "appears twice"),
    ([("version", b"1"), ("signature", b"00")], "header 'type' is missing"),
    ([("type", b"version"), ("signature", b"00")], "header 'version' is missing"),
    ([("type", b"delete"), ("version", b"1"), ("signature", b"00")], "unknown record type"),
    ([("type", b"version"), ("version", b"-1"), ("signature", b"00")], "must be a number"),
    ([("type", b"version"), ("version", b"9" * 16), ("signature", b"00")], "must be a number"),
    ([("type", b"version"), ("version", b" 1"), ("signature", b"00")], "must be a number"),
])
def test_malformed_headers_are_refused_with_their_reason(headers, reason):
    assert reason in refused(b"x", headers)


def test_a_tombstone_is_refused():
    _, headers = version_record()
    assert "tombstone" in refused(None, headers)


def test_a_signed_but_undecodable_payload_is_refused_when_read():
    with pytest.raises(ValidationError, match="not an online model version"):
        read_version(decode(*encode(UpdateRecord("version", 1, b"garbage"), KEY), KEY))
    with pytest.raises(ValidationError, match="not valid JSON"):
        read_json(decode(*encode(UpdateRecord("decision", 1, b"{nope"), KEY), KEY))
    with pytest.raises(ValidationError, match="the header says 9"):  # signed as 9, holds 7
        read_version(decode(*encode(UpdateRecord("version", 9, version_record(7)[0]), KEY), KEY))
    with pytest.raises(ValidationError, match="'action'"):
        read_command(decode(*encode(UpdateRecord("command", 1, b'{"action": "drop", "version": 1}'), KEY), KEY))


def test_valid_records_leaves_out_the_rest():
    class Msg:
        def __init__(self, value, headers):
            self.value, self.headers = value, headers

    good = Msg(*version_record(3))
    assert [r.version for r in valid_records([Msg(b"x", []), good, Msg(b"y", [("type", b"\xff")])], KEY)] == [3]


def test_the_key_file_is_made_once_with_mode_0600_and_shared(tmp_path):
    settings = Settings().replace(state_dir=tmp_path)
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(signing_key(settings))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) >= 32
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    assert signing_key(settings) == keys[0]


def test_a_configured_key_wins_and_must_not_be_short(tmp_path):
    settings = Settings().replace(state_dir=tmp_path, model_signing_key="s" * 20)
    assert signing_key(settings) == b"s" * 20
    assert not (tmp_path / KEY_FILE).exists()
    with pytest.raises(SettingsError, match="at least 16"):
        signing_key(settings.replace(model_signing_key="short"))
