"""The gateway's model-updates follower applies only signed records, skips every other record
(dead-lettered, counted) instead of retrying it, and installs any version it is told to serve."""
import dataclasses

import torch
from prometheus_client import generate_latest

from app.gateway.keys import METRICS, READ_MODEL
from app.metrics import sample_sum
from tables.wire.updates import UpdateRecord, encode, encode_version
from models.online.click_model import OnlineClickModel
from models.online.rec_model import OnlineRecConfig, OnlineRecModel
from models.online.versions import LearnerConfig, OnlineLearner, full_version
from tests.gateway.conftest import follower_of, publish, shopper, versions


def garbage(valid: bytes, headers: list[tuple[str, bytes]], key: bytes) -> list[tuple[bytes | None, list]]:
    """Records a gateway must refuse, each for its own reason; `valid`/`headers`: a signed version."""
    other_key = encode_version(versions(1)[0], b"w" * 32)
    flipped = valid[:-1] + bytes([valid[-1] ^ 1])
    return [
        (b"{not json", [("type", b"decision"), ("version", b"1")]),  # unsigned, bad JSON
        (valid, [*headers, ("origin", b"me")]),  # an unknown header key
        (valid, [(k, b"\xff" if k == "type" else v) for k, v in headers]),  # a non-UTF-8 header
        (flipped, headers),  # forged payload
        (valid, [(k, b"99" if k == "version" else v) for k, v in headers]),  # forged version header
        other_key,  # signed with another key
        encode(UpdateRecord("version", 1, b"not a version"), key),  # signed, undecodable payload
        (None, headers),  # a tombstone
    ]


def metric(app, name: str, **labels: str) -> float:
    """The sum of `name` over the series with these labels."""
    return sample_sum(generate_latest(app[METRICS].registry).decode(), name, **labels)


async def test_garbage_of_every_kind_is_dead_lettered_and_the_next_valid_version_installs(client, sink):
    app = client.server.app
    shopper(app[READ_MODEL])
    follower = follower_of(app)
    first = versions(1)[0]
    valid, headers = encode_version(first, follower.key)
    bad = garbage(valid, headers, follower.key)
    for offset, (value, hdrs) in enumerate(bad):
        assert not await follower.receive(value, hdrs, offset=offset, key=b"rec")
    assert follower.serving_version == 0
    assert await follower.receive(valid, headers, offset=len(bad))
    assert follower.serving_version == 1
    body = await (await client.get("/v1/recommend?user_id=u&k=1")).json()
    assert body["model_version"] == "online-v1" and body["items"][0]["item_id"] == "x1"

    assert len(sink.dead_letters) == len(bad)
    for offset, (key, value, hdrs) in enumerate(sink.dead_letters):
        fields = dict(hdrs)
        assert key == b"rec" and value == bad[offset][0]
        assert fields["source_offset"] == str(offset).encode() and fields["reason"]
    reasons = [dict(h)["reason"].decode() for _, _, h in sink.dead_letters]
    assert "not signed" in reasons[0] and "unknown header 'origin'" in reasons[1] and "not UTF-8" in reasons[2]
    assert all("signature does not match" in r for r in reasons[3:6])
    assert "not an online model version" in reasons[6] and "tombstone" in reasons[7]
    assert metric(app, "streamrank_dead_letters_total", source="model-updates") == len(bad)
    assert metric(app, "streamrank_dead_letters_total", source="model-updates", reason="forged") == 3
    assert metric(app, "streamrank_model_records_rejected_total", source="model-updates") == len(bad)


async def test_a_lower_numbered_full_version_after_higher_ones_installs(client, sink):
    """A gateway that held 3..6 was told to serve a full version numbered 2: it failed with
    KeyError (pruned before installed) and retried it forever."""
    app = client.server.app
    shopper(app[READ_MODEL])
    follower = follower_of(app)
    for version in versions(6):
        assert await publish(follower, version)
    assert follower.recent == [3, 4, 5, 6]
    learner = OnlineLearner(OnlineRecModel(OnlineRecConfig(dim=8, num_shards=1, capacity=1000, negatives=8)),
                            OnlineClickModel(), LearnerConfig(min_samples=1, guard_ratio=0.01))
    learner.step([(["a"], "x2")] * 80)
    learner.propose(1.0)
    whole = full_version(learner.serving_rec, learner.serving_click, 2, 6, 2.0, {})
    assert await publish(follower, whole)
    assert follower.serving_version == 2 and follower.recent == [4, 5, 6, 2] and list(follower.held) == [2]
    body = await (await client.get("/v1/recommend?user_id=u&k=1")).json()
    assert body["model_version"] == "online-v2" and body["items"][0]["item_id"] == "x2"
    # and the versions after it go on from there: the learner makes each on the one it published
    # last, so a delta on a version no longer served is not built (its parent's model is dropped)
    seventh = versions(7)[6]
    assert await publish(follower, seventh) and follower.serving_version == 2
    assert await publish(follower, dataclasses.replace(seventh, parent=2)) and follower.serving_version == 7
    assert follower.recent == [5, 6, 2, 7] and list(follower.held) == [7]
    assert sink.dead_letters == []


async def test_a_signed_version_that_cannot_be_built_is_skipped_not_retried(client, sink):
    app = client.server.app
    follower = follower_of(app)
    published = versions(2)
    assert await publish(follower, published[0])
    broken = published[1]
    broken.rows = torch.ones(len(broken.row_ids) + 3, 1)  # rows that do not match the ids
    assert not await publish(follower, broken)
    assert follower.serving_version == 1
    assert len(sink.dead_letters) == 1 and b"could not apply" in dict(sink.dead_letters[0][2])["reason"]
    assert app[METRICS].model_load_failures._value.get() == 1
