"""What one /v1/recommend costs the gateway's event loop, in-process: a cache miss against a hit.

Loads the first `--events` Beauty events into user profiles (as the changelogs would), the
newest item vectors (`var/models/rec-embeddings`) and the newest online learner checkpoint
(`var/models/online`, else the gateway's own transitions), then times
`ServingModels.recommend` for each user once (every call misses the cache and ranks: the
online model, the embedding pass, the blend) and again (every call is a hit). No HTTP: the
serve bench measures that. Also times the parts of a miss alone, then the same misses with the
learner's online SASRec (a rec-neural version of the served shape) blended in.
Last line: JSON {"miss_us": ..., "hit_us": ..., "miss_over_hit": ..., "parts_us": {...}, "users": n,
"neural": {"miss_us": ..., "miss_over_without": ..., "neural_pass_us": ..., "miss_us_32_together": ...}}
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.gateway.read_model import ReadModel
from app.gateway.serving import Filters, ServingModels, blend
from app.learner import checkpoints, load_latest
from app.replay_data import read_sequences, sequence_events
from app.settings import Settings
from app.threads import limit_threads
from models.checkpoint import version_dirs
from models.online.serving import ServingRecModel
from models.rec.embedding_version import NAME, EmbeddingRecVersion
from models.rec.neural_version import NeuralRecVersion
from models.rec.online_neural import OnlineSASRec, OnlineSASRecConfig
from models.rec.sasrec import SASRec, SASRecConfig
from tables import user_profiles


def serving_models(settings: Settings, n_events: int) -> tuple[ServingModels, list[str]]:
    read_model = ReadModel(settings)
    profiles: dict[str, dict] = {}
    events = sequence_events(read_sequences(settings.runtime.data_dir / "amazon-beauty" / "Beauty.txt"))
    for n, e in enumerate(itertools.islice(events, n_events)):
        profiles[e.user_id] = user_profiles.apply_event(profiles.get(e.user_id) or user_profiles.empty(), e, 0, n,
                                                        settings.features.recent_items)
    serving = ServingModels(read_model, embedding_blend=settings.recommend.embedding_blend)
    for user, profile in profiles.items():
        read_model.apply(user_profiles.NAME, user, profile)
    versions = version_dirs(settings.runtime.model_dir / NAME)
    if versions:
        serving.install(EmbeddingRecVersion.from_checkpoint(str(versions[-1])))
    if checkpoints(settings.runtime.online_model_dir):
        learner, _ = load_latest(settings)
        serving.install_online(ServingRecModel.from_model(learner.serving_rec))
    return serving, list(profiles)


async def per_call_us(serving: ServingModels, users: list[str], k: int, together: int = 1) -> float:
    """Microseconds per call, `together` calls at a time (concurrent ones share a ranking pass)."""
    started = time.perf_counter()
    for first in range(0, len(users), together):
        await asyncio.gather(*(serving.recommend(user, k, Filters()) for user in users[first:first + together]))
    return (time.perf_counter() - started) / len(users) * 1e6


def parts_us(serving: ServingModels, users: list[str], k: int) -> dict[str, float]:
    """The pieces of a miss, each over the same users: online rank, embedding pass, blend."""
    depth = max(4 * k, 50)
    requests = [(p["recent"], [*p.get("purchased", []), *p["recent"]]) for p in map(serving.read_model.profile, users)]
    out: dict[str, float] = {}
    if serving.online is not None:
        started = time.perf_counter()
        online = [serving.online.rank(h, depth, exclude=x) for h, x in requests]
        out["online_rank"] = (time.perf_counter() - started) / len(users) * 1e6
    if serving.embedding is not None:
        started = time.perf_counter()
        embedding = [serving.embedding.rank_many([(h, depth, x, None)])[0] for h, x in requests]
        out["embedding_pass"] = (time.perf_counter() - started) / len(users) * 1e6
        if serving.online is not None:
            started = time.perf_counter()
            for a, b in zip(online, embedding):
                blend([(0.5, a), (0.5, b)], k)
            out["blend"] = (time.perf_counter() - started) / len(users) * 1e6
    return {name: round(us, 1) for name, us in out.items()}


async def run(args: argparse.Namespace) -> dict:
    settings = Settings.from_env()
    limit_threads(settings.runtime.torch_threads)  # as the gateway does (app/main.py)
    serving, users = serving_models(settings, args.events)
    users = users[: args.users]
    await per_call_us(serving, users[:100], args.k)  # warm up: first-use costs of the versions
    miss = await per_call_us(serving, users[100:], args.k)
    hit = await per_call_us(serving, users[100:], args.k)
    out = {"miss_us": round(miss, 1), "hit_us": round(hit, 1), "miss_over_hit": round(miss / hit, 1),
           "parts_us": parts_us(serving, users[100:], args.k), "users": len(users) - 100,
           "online_model": serving.online is not None, "embedding_model": serving.embedding is not None}
    # The same misses with the learner's online SASRec blended in (issue 17), a version of the
    # served shape over Beauty's items: its cost does not depend on what the weights hold.
    serving.install_neural(neural_version(settings, args.neural_blend))
    await per_call_us(serving, users[:100], args.k)
    with_neural = await per_call_us(serving, users[100:], args.k)
    serving.install_neural(neural_version(settings, args.neural_blend))  # a new version: every call misses again
    await per_call_us(serving, users[:100], args.k, together=32)
    with_neural_32 = await per_call_us(serving, users[100:], args.k, together=32)
    requests = [(p["recent"], args.k * 4, [*p.get("purchased", []), *p["recent"]], None)
                for p in map(serving.read_model.profile, users[100:])]
    started = time.perf_counter()
    for request in requests:
        serving.neural.rank_many([request])  # type: ignore[union-attr]
    alone = (time.perf_counter() - started) / len(requests) * 1e6
    return {**out, "neural": {"miss_us": round(with_neural, 1), "miss_over_without": round(with_neural / miss, 2),
                              "neural_pass_us": round(alone, 1), "blend": args.neural_blend,
                              "miss_us_32_together": round(with_neural_32, 1)}}


def neural_version(settings: Settings, blend: float) -> NeuralRecVersion:
    path = settings.runtime.data_dir / "amazon-beauty" / "Beauty.txt"
    items = sorted({i for _, seq in read_sequences(path) for i in seq})
    torch.manual_seed(0)
    sasrec = SASRec(SASRecConfig(n_items=len(items))).eval()  # the offline model's default shape
    return NeuralRecVersion.from_model(OnlineSASRec.warm_start(sasrec, items, OnlineSASRecConfig(num_shards=1)),
                                       "bench", blend)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--users", type=int, default=3_100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--neural-blend", type=float, default=0.2, help="weight of the neural model in the blend")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
