"""The online SASRec in the learner process, on real Kafka: warm-started from the newest rec-neural
version, it learns the samples topic beside the count model, and its promoted state is written
as the next rec-neural version (what gateways' watchers swap in), carrying its blend weight; only
the newest few versions stay on disk."""
from __future__ import annotations

import torch
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.learner import KEEP_CHECKPOINTS, LearnerService
from app.metrics import Metrics
from models.checkpoint import load_checkpoint, version_dirs
from models.rec.neural_version import NAME, NeuralRecVersion
from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig
from models.rec.sasrec import SASRec, SASRecConfig
from tests.integration.test_online_rollback import SampleFeed, consume
from tests.unit.online_streams import chain_stream

ITEMS = [f"{c}{i}" for c in "xyz" for i in range(12)]


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
               for s in family.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


async def test_the_learner_trains_the_neural_model_and_writes_its_promoted_versions(stack_settings):
    settings = stack_settings.replace(version_interval_s=3600, checkpoint_interval_s=3600, guard_min_samples=100,
                                      learner_validation_share=1.0, learner_neural_share=1.0,
                                      learner_neural_blend_samples=20, search_dense=False)
    torch.manual_seed(0)
    sasrec = SASRec(SASRecConfig(n_items=len(ITEMS), dim=16, layers=1, heads=1, max_len=8, dropout=0.0)).eval()
    start = NeuralRecVersion.from_model(OnlineSASRec.warm_start(sasrec, ITEMS, OnlineSASRecConfig(num_shards=1)),
                                        "offline", blend=0.0)
    for _ in range(KEEP_CHECKPOINTS):  # v1..v5: the promoted one is v6, and the oldest goes
        start.save(settings.runtime.model_dir, {"kind": "offline"})
    metrics = Metrics()
    service = LearnerService(settings, metrics)
    await service.start()
    feed = SampleFeed(settings)
    try:
        assert service.neural is not None
        samples = chain_stream(300, seed=1)  # users walk x_i -> y_i -> z_i
        await consume(service, feed, samples)
        assert metric(metrics, "streamrank_learner_neural_samples_total", outcome="learned") == len(samples)
        await service.propose()
        assert metric(metrics, "streamrank_learner_neural_decisions_total", decision="promote") == 1
        written = load_checkpoint(settings.runtime.model_dir / NAME)
        assert written.version == KEEP_CHECKPOINTS + 1 and written.card["kind"] == "promote"
        kept = [p.name for p in version_dirs(settings.runtime.model_dir / NAME)]
        assert kept == [f"v{n:04d}" for n in range(2, KEEP_CHECKPOINTS + 2)]
        assert written.card["blend"] == metric(metrics, "streamrank_learner_neural_blend")
        assert written.card["blend_samples"] >= 20 and set(written.card["blend_ndcg"]) >= {"0.0", "0.2"}
        version = NeuralRecVersion.from_checkpoint(written)
        # it learned the walks: after x3 the promoted version ranks y3 first, the start did not
        assert version.rank(["x3"], 1)[0][0] == "y3" and start.rank(["x3"], 1)[0][0] != "y3"
    finally:
        await service.stop()
