"""The item-vectors record: compact, exact to float16, tied to its tower and text."""
import pytest
import torch
import torch.nn.functional as F

from models.errors import ValidationError
from models.item_vectors import HEADER, decode_vector, encode_vector, model_digest, text_digest

TOWER = model_digest("minilm|pretrained|max_length=32|mean-pool-l2")


def test_a_vector_round_trips_as_float16_with_its_tower_and_text():
    vector = F.normalize(torch.randn(384), dim=0)
    value = encode_vector(TOWER, "cordless drill tools", vector)
    assert len(value) == HEADER + 2 * 384  # float16, not JSON floats
    got = decode_vector(value)
    assert got.vector.dtype == torch.float16 and got.vector.shape == (384,)
    assert torch.equal(got.vector, vector.half())
    assert torch.allclose(got.vector.float(), vector, atol=1e-3)
    assert got.matches(TOWER, "cordless drill tools")
    assert not got.matches(TOWER, "cordless drill")  # the item was renamed: not its vector
    assert not got.matches(model_digest("another tower"), "cordless drill tools")
    assert got.text == text_digest("cordless drill tools")


@pytest.mark.parametrize("value", [b"", b"IV1", b"XX1" + bytes(40), b"IV1" + bytes(HEADER - 3) + b"\x00",
                                   b'{"vector": [0.1]}'])
def test_anything_else_is_refused_with_a_reason(value):
    with pytest.raises(ValidationError, match="not an item-vectors record"):
        decode_vector(value)
