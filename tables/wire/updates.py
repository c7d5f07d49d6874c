"""The signed record format of the model-updates and model-commands topics.

A record is (kind, version number, payload). The value is the payload, unchanged; the
headers are exactly `type` (the kind), `version` (the number, ASCII digits) and `signature`
(hex HMAC-SHA256 over kind, number and payload under the shared key). Gateways install
whatever a version record tells them to, so a record must prove the learner (or an admin
API holding the key) wrote it: anyone able to write to Kafka could otherwise replace the
model every gateway serves, or roll it back without the admin token.

Decoding never raises anything but `ValidationError`, whose reason says what is wrong, so a
reader can dead-letter the record and go on to the next one (a record retried forever stops
every later version).

The key is `settings.runtime.model_signing_key`; when that is empty, a random key kept in
`<state_dir>/secrets/model-signing.key`, made (mode 0600) by the first process that needs it.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from models.errors import SettingsError, ValidationError
from models.online.versions import Version

KINDS = ("version", "decision", "rollback", "command")
VERSION_KINDS = ("version", "rollback")  # the payload is a whole or delta `Version`
# What a command asks the learner to do: serve a held version again (rollback, promote), or
# send the version it serves whole (republish: a gateway that lacks a delta's parent asks).
ACTIONS = ("rollback", "promote", "republish")
HEADERS = ("type", "version", "signature")
KEY_FILE = Path("secrets") / "model-signing.key"
MIN_KEY_CHARS = 16
_NUMBER = re.compile(r"[0-9]{1,15}")
_DOMAIN = b"streamrank model-update v1\0"  # a signature over these records means nothing elsewhere


@dataclass(frozen=True)
class UpdateRecord:
    kind: str
    version: int
    payload: bytes


@dataclass(frozen=True)
class Command:
    action: str
    version: int
    issued: float  # unix seconds, when the admin API accepted it


# ---- the key ------------------------------------------------------------------------------
class KeyValues(Protocol):
    """The two settings the key comes from (app/settings.py's `RuntimeSettings` has them)."""

    @property
    def model_signing_key(self) -> str: ...

    @property
    def state_dir(self) -> Path: ...


class KeySettings(Protocol):
    """app/settings.py's `Settings`, whose `runtime` group has the two."""

    @property
    def runtime(self) -> KeyValues: ...


def signing_key(settings: KeySettings) -> bytes:
    """The HMAC key every writer and reader of model records shares."""
    if settings.runtime.model_signing_key:
        if len(settings.runtime.model_signing_key) < MIN_KEY_CHARS:
            raise SettingsError(f"STREAMRANK_MODEL_SIGNING_KEY must be at least {MIN_KEY_CHARS} characters "
                                "(e.g. the output of `openssl rand -hex 32`)")
        return settings.runtime.model_signing_key.encode("utf-8")
    path = Path(settings.runtime.state_dir) / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    return _read_key_file(path)


def _create_key_file(path: Path) -> None:
    """Write a random key to `path` unless another process got there first (then theirs wins)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".model-signing-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode())
            f.flush()
            os.fsync(f.fileno())
        # A hard link appears whole or not at all and fails if the name exists: two processes
        # starting together agree on one key, and no reader sees a half-written file.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _read_key_file(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_CHARS:
        raise SettingsError(f"the model signing key in {path} is empty or too short: delete it to make a new one "
                            "(every process of the deployment must share it) or set STREAMRANK_MODEL_SIGNING_KEY")
    return key


# ---- writing ------------------------------------------------------------------------------
def sign(key: bytes, kind: str, version: int, payload: bytes) -> bytes:
    mac = hmac.new(key, _DOMAIN + f"{kind}\0{version}\0".encode(), hashlib.sha256)
    mac.update(payload)
    return mac.hexdigest().encode()


def encode(record: UpdateRecord, key: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value, headers) of a signed record."""
    if record.kind not in KINDS:
        raise ValueError(f"unknown record kind {record.kind!r}")
    if not _NUMBER.fullmatch(str(record.version)):
        raise ValueError(f"bad version number {record.version!r}")
    return record.payload, [("type", record.kind.encode()), ("version", str(record.version).encode()),
                            ("signature", sign(key, record.kind, record.version, record.payload))]


def encode_version(version: Version, key: bytes, kind: str = "version") -> tuple[bytes, list[tuple[str, bytes]]]:
    if kind not in VERSION_KINDS:
        raise ValueError(f"a Version goes in a record of kind {' or '.join(VERSION_KINDS)}, not {kind!r}")
    return encode(UpdateRecord(kind, version.number, version.to_bytes()), key)


def encode_json(kind: str, version: int, body: dict[str, Any], key: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    return encode(UpdateRecord(kind, version, orjson.dumps(body)), key)


def encode_command(action: str, version: int, key: bytes, now: float | None = None
                   ) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A command for the learner: a manual rollback/promote to `version`, or a republish (`version`:
    the one the sender could not build)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    body = {"action": action, "version": version, "issued": time.time() if now is None else now}
    return encode_json("command", version, body, key)


# ---- reading ------------------------------------------------------------------------------
def decode(value: bytes | None, headers: Sequence[tuple[str, bytes]] | None, key: bytes) -> UpdateRecord:
    """The record, if its headers are exactly ours and its signature matches; else ValidationError."""
    if value is None:
        raise ValidationError("a record without a value (a tombstone) is not a model record")
    fields = _headers(headers)
    if "signature" not in fields:
        raise ValidationError("not signed: no 'signature' header")
    for name in ("type", "version"):
        if name not in fields:
            raise ValidationError(f"header {name!r} is missing")
    kind, number = fields["type"], fields["version"]
    if kind not in KINDS:
        raise ValidationError(f"unknown record type {kind[:40]!r}; known: {', '.join(KINDS)}")
    if not _NUMBER.fullmatch(number):
        raise ValidationError(f"header 'version' must be a number of 1 to 15 digits, not {number[:40]!r}")
    version = int(number)
    if not hmac.compare_digest(fields["signature"].encode(), sign(key, kind, version, value)):
        raise ValidationError("signature does not match: forged, altered, or signed with another key")
    return UpdateRecord(kind, version, value)


def _headers(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, raw in headers or ():
        if name not in HEADERS:
            raise ValidationError(f"unknown header {str(name)[:40]!r}; a model record has exactly "
                                  f"{', '.join(HEADERS)}")
        if name in fields:
            raise ValidationError(f"header {name!r} appears twice")
        try:
            fields[name] = bytes(raw or b"").decode("utf-8")
        except (UnicodeDecodeError, TypeError):
            raise ValidationError(f"header {name!r} is not UTF-8 text") from None
    return fields


def read_version(record: UpdateRecord) -> Version:
    """The `Version` a version or rollback record holds (its number must be the header's)."""
    if record.kind not in VERSION_KINDS:
        raise ValidationError(f"a {record.kind} record holds no model version")
    try:
        version = Version.from_bytes(record.payload)
    except Exception as exc:  # noqa: BLE001 — any malformed payload: the record is refused, never retried
        raise ValidationError(f"payload is not an online model version: {type(exc).__name__}: {exc}"[:300]) from None
    if version.number != record.version:
        raise ValidationError(f"payload holds version {version.number}, the header says {record.version}")
    return version


def read_json(record: UpdateRecord) -> dict[str, Any]:
    """The JSON object a decision or command record holds."""
    try:
        body = orjson.loads(record.payload)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValidationError("payload must be a JSON object")
    return body


def read_command(record: UpdateRecord) -> Command:
    if record.kind != "command":
        raise ValidationError(f"expected a command record, not {record.kind!r}")
    body = read_json(record)
    action, version, issued = body.get("action"), body.get("version"), body.get("issued")
    if action not in ACTIONS:
        raise ValidationError(f"command 'action' must be one of {', '.join(ACTIONS)}")
    if version != record.version or isinstance(version, bool):
        raise ValidationError(f"command 'version' must be the header's version {record.version}")
    if isinstance(issued, bool) or not isinstance(issued, (int, float)):
        raise ValidationError("command 'issued' must be a time in unix seconds")
    return Command(action, record.version, float(issued))


def valid_records(records: Sequence[Any], key: bytes) -> list[UpdateRecord]:
    """The signed, well-formed records among consumer records (anything else is left out)."""
    out = []
    for msg in records:
        try:
            out.append(decode(msg.value, msg.headers, key))
        except ValidationError:
            continue
    return out
