"""The learner's online SASRec in /v1/recommend: its rec-neural versions are swapped in, and it is
blended with the online model at its validated weight (left out at weight 0)."""
import torch

from app.gateway.keys import NEURAL_WATCHER, SERVING
from models.rec.neural_version import NeuralRecVersion
from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig
from models.rec.sasrec import SASRec, SASRecConfig
from tables import user_profiles
from tests.gateway.conftest import profile, until

ITEMS = [f"n{i}" for i in range(30)]


def neural_version(blend: float, seed: int = 0) -> NeuralRecVersion:
    torch.manual_seed(seed)
    sasrec = SASRec(SASRecConfig(n_items=len(ITEMS), dim=8, layers=1, heads=1, max_len=6, dropout=0.0)).eval()
    model = OnlineSASRec.warm_start(sasrec, ITEMS, OnlineSASRecConfig(num_shards=1))
    return NeuralRecVersion.from_model(model, "test", blend)


async def test_a_written_version_is_served_at_its_weight(client, read_model, settings):
    read_model.apply(user_profiles.NAME, "me", profile(["n1", "n2"]))
    serving = client.app[SERVING]
    neural_version(blend=1.0).save(settings.runtime.model_dir, {"kind": "test"})
    assert await client.app[NEURAL_WATCHER].check()
    assert serving.neural.version == "rec-neural-v1"
    body = await (await client.get("/v1/recommend?user_id=me&k=5")).json()
    assert body["model_version"].startswith("rec-neural-v1+")
    # weight 1: the online model's items count 0, so the neural model's order is served
    expected = serving.neural.rank(["n1", "n2"], 5, exclude=["n1", "n2"])
    assert [i["item_id"] for i in body["items"]] == [item for item, _ in expected]

    neural_version(blend=1.0, seed=1).save(settings.runtime.model_dir, {"kind": "test"})
    await until(lambda: serving.neural.version == "rec-neural-v2")  # the watcher polls every 0.05 s here
    body = await (await client.get("/v1/recommend?user_id=me&k=5")).json()
    expected = serving.neural.rank(["n1", "n2"], 5, exclude=["n1", "n2"])
    assert body["model_version"].startswith("rec-neural-v2+")
    assert [i["item_id"] for i in body["items"]] == [item for item, _ in expected]


async def test_at_weight_0_the_neural_model_is_left_out(client, read_model, settings):
    read_model.apply(user_profiles.NAME, "me", profile(["n1", "n2"]))
    serving = client.app[SERVING]
    neural_version(blend=0.0).save(settings.runtime.model_dir, {"kind": "test"})
    assert await client.app[NEURAL_WATCHER].check()
    assert serving.neural is not None and serving.second() is None
    body = await (await client.get("/v1/recommend?user_id=me&k=5")).json()
    assert "rec-neural" not in body["model_version"]
