"""The item-vectors record: one catalog item's text vector, as the encoder publishes it.

Key: the item id (UTF-8). Value, compact binary (a JSON list of 384 floats is ~8 KB, this is
790 bytes):

    b"IV1" | model digest (8 bytes) | text digest (12 bytes) | float16 vector (2 * dim bytes)

The model digest names the item tower that computed the vector (`TextEncoder.model_key`), the
text digest the text it encoded (`vector_cache.text_key`): a reader installs a vector only
when both match what it serves, so a vector of an older title or another tower is never used.
A null value (tombstone) deletes the item's vector.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from models.errors import ValidationError
from models.vector_cache import text_key

MAGIC = b"IV1"
MODEL_BYTES = 8
TEXT_BYTES = 12  # as `text_key` (blake2b, 12 bytes)
HEADER = len(MAGIC) + MODEL_BYTES + TEXT_BYTES


def model_digest(model_key: str) -> bytes:
    return hashlib.blake2b(model_key.encode(), digest_size=MODEL_BYTES).digest()


def text_digest(text: str) -> bytes:
    return bytes.fromhex(text_key(text))


@dataclass(frozen=True)
class ItemVector:
    model: bytes  # model_digest of the item tower
    text: bytes  # text_digest of the encoded text
    vector: torch.Tensor  # [D] float16

    def matches(self, model: bytes, text: str) -> bool:
        return self.model == model and self.text == text_digest(text)


def encode_vector(model: bytes, text: str, vector: torch.Tensor) -> bytes:
    """The record value for `vector` [D] (any float dtype; sent as float16) of `text`."""
    half = vector.detach().to("cpu", torch.float16).contiguous().numpy()
    return MAGIC + model + text_digest(text) + half.tobytes()


def decode_vector(value: bytes) -> ItemVector:
    """The record value back; ValidationError when it is not one."""
    if len(value) <= HEADER or not value.startswith(MAGIC) or (len(value) - HEADER) % 2:
        raise ValidationError(f"not an item-vectors record ({len(value)} bytes; want {MAGIC!r} + header + float16)")
    model = value[len(MAGIC): len(MAGIC) + MODEL_BYTES]
    text = value[len(MAGIC) + MODEL_BYTES: HEADER]
    vector = torch.from_numpy(np.frombuffer(value, np.float16, offset=HEADER).copy())
    return ItemVector(model, text, vector)
