"""What sponsored slots cost a gateway per answer, in-process: the ranking handler's tail with ads against without.

A /v1/recommend or /v1/search answer is its ranking (the cache, the models) and then the
handler's tail (`_with_ads` in app/gateway/handlers/ranking.py): without campaigns, the
page's JSON; with them, the auction over the candidates' campaigns (relevance floor,
targeting, pacing, pCTR from the click model, second prices), the merged page and a signed
token per ad. Ads touch nothing before the tail, so the tail is their whole cost. This runs
that tail on the same pages with and without campaigns, interleaved in rounds, and reports
CPU-us per answer for each; a real catalog size (`--items`), `--share` of it advertised with
log-normal bids (median 3 per click, as bench/serve.py --ads loads), a click model that knows
every item. Compare the extra with a whole answer's cost: bench/rec_miss.py (a /v1/recommend
miss, ~100 us) and bench/search_stages.py (a search, some ms).
The same lists are then answered as the recommendation cache serves them again (each answer
names its cached list, whose ads a gateway keeps): "cached_with_us".
Last line: {"without_us": ..., "with_us": ..., "extra_us": ..., "cached_with_us": ..., "ads_per_answer": ..., ...}.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import orjson
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.gateway.ads import SponsoredSlots
from app.gateway.handlers.ranking import _with_ads
from app.gateway.keys import ADS, METRICS, READ_MODEL
from app.gateway.read_model import ReadModel
from app.gateway.serving import Filters, Ranking
from app.metrics import Metrics
from app.settings import Settings
from models.ads.campaigns import Campaign
from models.online.click_serving import ServingClickModel
from tables import campaigns as campaigns_table
from tables import catalog


def gateway_state(settings: Settings, items: int, share: float, seed: int) -> tuple[ReadModel, ServingClickModel, int]:
    """A read model with `items` catalog entries and campaigns over `share` of them; a click
    model that has seen every item."""
    rng = random.Random(seed)
    read_model = ReadModel(settings)
    ids = [f"i{n}" for n in range(items)]
    for n, item in enumerate(ids):
        read_model.apply(catalog.NAME, item, {"item_id": item, "title": f"item {n}", "price": 9.99, "stock": 5,
                                              "category": f"c{n % 50}", "ts": 1.0, "deleted": False})
    advertised = rng.sample(ids, int(items * share))
    for n, item in enumerate(advertised):
        c = Campaign(f"c{n}", item, round(3.0 * rng.lognormvariate(0.0, 0.6), 4), 1e9)
        read_model.apply(campaigns_table.NAME, c.campaign_id, orjson.loads(c.to_json()))
    click = ServingClickModel({i: rng.gauss(-2.0, 1.0) for i in ids}, {i: (100.0, 5.0) for i in ids},
                              torch.tensor([0.1, 1.0]), -1.0, [0.0, -0.4, -0.7, -0.9, -1.1])
    return read_model, click, len(advertised)


def pages(items: int, n: int, depth: int, seed: int) -> list[Ranking]:
    """`n` rankings of `depth` random items, scores falling from 1 (a few above the 0.8 floor)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        scores = sorted((rng.uniform(0.3, 1.0) for _ in range(depth)), reverse=True)
        out.append(Ranking([(f"i{rng.randrange(items)}", s / scores[0]) for s in scores], "online-v1"))
    return out


def tail_us(request: SimpleNamespace, rankings: list[Ranking], k: int) -> tuple[float, int]:
    """(CPU-us per answer, sponsored results served) for the handler's tail over `rankings`."""
    filters = Filters()
    sponsored = 0
    cpu0 = time.process_time()
    for ranking in rankings:
        response = _with_ads(request, ranking, k, "rec", None, filters, user_id="u1", strategy="personal")
        sponsored += response.body.count(b'"sponsored"')
    return (time.process_time() - cpu0) / len(rankings) * 1e6, sponsored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--share", type=float, default=0.1, help="share of the items advertised")
    parser.add_argument("--answers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    settings = Settings.from_env().replace(ads_enabled=True)
    read_model, click, n_campaigns = gateway_state(settings, args.items, args.share, args.seed)
    metrics = Metrics()
    with_ads = SponsoredSlots(settings, read_model, lambda: click)
    without_ads = SponsoredSlots(settings, ReadModel(settings), lambda: click)  # no campaign: the organic tail
    requests = {name: SimpleNamespace(app={ADS: slots, READ_MODEL: read_model, METRICS: metrics})
                for name, slots in (("without", without_ads), ("with", with_ads))}
    fresh = pages(args.items, args.answers, args.k + with_ads.config.max_ads, args.seed)
    # The same lists as the recommendation cache serves them again: each answer names its list.
    cached = [Ranking(list(r.items), r.version, r.strategy, source=tuple(r.items)) for r in fresh]
    tail_us(requests["with"], fresh[:1000], args.k)  # warm: the signing key, the metrics' labels
    tail_us(requests["with"], cached, args.k)  # the lists asked once before (a cache hit's second answer on)
    best: dict[str, float] = {}
    served = 0
    for r in range(args.rounds):
        for name, request, rankings in (("without", requests["without"], fresh), ("with", requests["with"], fresh),
                                        ("cached", requests["with"], cached)):
            us, sponsored = tail_us(request, rankings, args.k)
            best[name] = min(best.get(name, us), us)
            served = sponsored if name == "with" else served
            print(f"round {r + 1} {name:>7}: {us:.1f} CPU-us per answer")
    out = {"without_us": round(best["without"], 1), "with_us": round(best["with"], 1),
           "extra_us": round(best["with"] - best["without"], 1),
           "cached_with_us": round(best["cached"], 1), "cached_extra_us": round(best["cached"] - best["without"], 1),
           "ads_per_answer": round(served / args.answers, 3),
           "campaigns": n_campaigns, "items": args.items, "answers": args.answers}
    print(f"the ranking handler's tail: {out['without_us']} CPU-us per answer without ads, {out['with_us']} with "
          f"on fresh lists, {out['cached_with_us']} on cached ones ({n_campaigns:,} campaigns, "
          f"{out['ads_per_answer']} ads per answer; best of {args.rounds} rounds)")
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
