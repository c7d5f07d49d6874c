"""Quality of the gateway's recommendation path on Beauty (leave-one-out, a sample of users).

Feeds every item but each user's last through the gateway's online transition model (as the
changelogs would), installs the item vectors that `streamrank train` exported last, and
ranks each user's last item with `ServingModels.recommend` for several blend weights (top
10 as served: history excluded).
Last line: JSON {"transitions_only": {...}, "blend_0.2": {...}, ..., "users": n, "seconds": s}
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.gateway.read_model import ReadModel
from app.gateway.serving import Filters, ServingModels
from app.settings import Settings
from models.data.sequences import load_sequences
from models.rec.embedding_version import NAME, EmbeddingRecVersion
from tables import user_profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=4000)
    args = parser.parse_args()
    settings = Settings.from_env()
    base = settings.runtime.data_dir / "amazon-beauty"
    data = load_sequences(base / "Beauty.txt", base / "Beauty_item2attributes.json")
    started = time.perf_counter()
    read_model = ReadModel(settings)
    serving = ServingModels(read_model, cache_size=0)  # the blend weight changes below; a cache would not see it
    targets = {}
    for user, seq in zip(data.users, data.sequences):
        items = [data.items[i] for i in seq]
        profile = user_profiles.empty()
        profile["recent"] = items[:-1][-settings.features.recent_items:]
        profile["counts"] = {"purchase": len(items) - 1}
        read_model.apply(user_profiles.NAME, user, profile)  # the transitions learn here
        targets[user] = items[-1]
    vectors = EmbeddingRecVersion.from_checkpoint(str(settings.runtime.model_dir / NAME))
    sample = random.Random(0).sample(list(targets), min(args.users, len(targets)))
    results: dict = {}
    for name, weight, install in [("transitions_only", 0.0, None), ("blend_0.2", 0.2, vectors),
                                  ("blend_0.5", 0.5, vectors), ("vectors_only", 1.0, vectors)]:
        serving.embedding, serving.embedding_blend = install, weight
        hr = ndcg = 0.0
        for user in sample:
            ranked = [i for i, _ in asyncio.run(serving.recommend(user, 10, Filters())).items]
            if targets[user] in ranked:
                hr += 1
                ndcg += 1 / math.log2(ranked.index(targets[user]) + 2)
        results[name] = {"HR@10": round(hr / len(sample), 4), "NDCG@10": round(ndcg / len(sample), 4)}
        print(name, results[name], flush=True)
    results.update(users=len(sample), model=vectors.version, seconds=round(time.perf_counter() - started, 1))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
