"""Sponsored slots with each auction's knobs tuned: is the click model worth revenue at equal page quality?

`streamrank evaluate ads` runs every auction with the defaults, where the model's auction
alone has a floor on expected revenue per impression (pCTR x bid >= 0.1), which prices a
lone ad at 0.1 / pCTR a click while highest-bid-first pays the 0.05 reserve: most auctions
have one eligible ad or none, so much of the model's lead there is that floor. Here each
auction gets its own best knobs: a grid of relevance floors and per-click reserves (and, for
the two with a pCTR, expected-revenue floors) runs on the train queries, each auction keeps
the setting that earns most with the page's nDCG@10 at least `--ndcg-ratio` x organic (the
issue's 0.98), and that setting runs on the held-out dev queries, the same sessions for all.
Both splits run `streamrank evaluate ads`'s horizon (a week of warm-up, three reported days) and
the train queries are drawn down to as many as dev has, so each query comes back as often in
both and the model has learned as much where its knobs are chosen as where they are reported.
`--oracle` tunes a fourth auction whose pCTR is the simulator's own click probability: a ceiling
for any click model on the same grid. `--seeds 7,8,9` runs the chosen settings on dev with other
shoppers too (the sessions' seed; knobs are chosen on the first). Last line: {"model": {"config": ...,
"train": {...}, "dev": {...}, "dev_by_seed": {seed: {... "by_day": [...]}}}, "highest_bid": ...,
"counts_ctr": ..., ["oracle": ...,] "dev_revenue_model_over_highest_bid": ..., "dev_ratio_by_seed":
{seed: ...} [, "dev_revenue_oracle_over_highest_bid": ...]}; `by_day` is each simulated day's
revenue and page nDCG over organic, the warm-up days first (the cold start).
"""
from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.jobs import evaluate_ads as ea
from app.search_sessions import synthetic_campaigns
from app.settings import Settings
from models.ads.auction import AuctionConfig
from models.data.homedepot import load_homedepot

FLOORS = (0.7, 0.8, 0.9)
RESERVES = (0.05, 0.25, 0.5, 0.75, 1.0)
ECPM_FLOORS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)

_state: dict[str, object] = {}  # per worker process: data, queries, organic results, campaigns


def _load(sessions_per_day: int, days: int, warmup_days: int, queries: int) -> None:
    settings = Settings.from_env()
    data = load_homedepot((settings.runtime.data_dir / "homedepot" / "train.csv.gz").resolve())
    plan = replace(ea.AdsEvalPlan(), sessions_per_day=sessions_per_day, days=days, warmup_days=warmup_days)
    _state.update(data=data, plan=plan, campaigns=synthetic_campaigns(data.items, plan.campaigns))
    dev = ea.held_out_queries(data, settings, queries, "dev", plan.seed)
    # As many train queries as dev ones: the same sessions a day then show each as often.
    train = ea.held_out_queries(data, settings, len(dev), "train", plan.seed)
    for split, picked in (("train", train), ("dev", dev)):
        _state[split] = (picked, ea.organic_results(data, picked, plan.candidates))


Job = tuple[str, str, float, float, float, int]  # (split, auction, relevance floor, reserve, expected-revenue floor, seed)
Result = tuple[Job, dict[str, Any]]


def _run(job: Job) -> Result:
    split, policy, floor, reserve, ecpm, seed = job
    plan = _state["plan"]
    plan = replace(plan, seed=seed, auction=AuctionConfig(relevance_floor=floor, reserve=reserve, min_expected_revenue=ecpm))
    queries, organic = _state[split]
    run = ea.simulate(_state["data"], queries, organic, _state["campaigns"], policy, plan)
    summary: dict[str, Any] = run.summary()
    organic_ndcg = run.organic_ndcg()
    summary["ndcg_ratio"] = round(summary["ndcg@10"] / organic_ndcg, 4) if organic_ndcg else 0.0
    if split == "dev":
        summary["by_day"] = [[day["revenue_per_1k"], day["ndcg_ratio"]] for day in run.by_day()]
    return job, summary


def grid(policy: str) -> list[tuple[float, float, float]]:
    ecpms = (0.0,) if policy == "highest_bid" else ECPM_FLOORS  # bid alone knows no pCTR
    return list(itertools.product(FLOORS, RESERVES, ecpms))


@contextmanager
def simulations(processes: int, init: tuple[int, int, int, int]) -> Iterator[Callable[[Iterable[Job]], Iterable[Result]]]:
    """Something that runs jobs: `processes` fresh interpreters (spawned: a fork of a process
    with torch's threads, as a test's, can hang in the child), or this process for 1."""
    if processes <= 1:
        _load(*init)
        yield lambda jobs: map(_run, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(processes, initializer=_load, initargs=init) as pool:
        yield lambda jobs: pool.imap_unordered(_run, jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ndcg-ratio", type=float, default=0.98, help="least page nDCG@10 over organic")
    parser.add_argument("--sessions-per-day", type=int, default=ea.AdsEvalPlan.sessions_per_day)
    parser.add_argument("--days", type=int, default=ea.AdsEvalPlan.days)
    parser.add_argument("--warmup-days", type=int, default=ea.AdsEvalPlan.warmup_days, help="days learned, not reported")
    parser.add_argument("--queries", type=int, default=0,
                        help="dev queries (0: all); train draws as many")
    parser.add_argument("--processes", type=int, default=2, help="simulations at once (1: in this process)")
    parser.add_argument("--seeds", default=str(ea.AdsEvalPlan.seed),
                        help="sessions' seeds the chosen settings run on dev with, comma-separated (the first tunes)")
    parser.add_argument("--oracle", action="store_true",
                        help="also tune the auction on the simulator's true click probabilities: a ceiling for any pCTR")
    args = parser.parse_args()
    if not 0 <= args.warmup_days < args.days:
        parser.error(f"need 0 <= --warmup-days < --days (got {args.warmup_days} and {args.days})")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    init = (args.sessions_per_day, args.days, args.warmup_days, args.queries)
    policies = ea.POLICIES + (("oracle",) if args.oracle else ())
    jobs = [("train", policy, *config, seeds[0]) for policy in policies for config in grid(policy)]
    with simulations(args.processes, init) as run_all:
        train = dict(run_all(jobs))
        best: dict[str, Job] = {}
        for policy in policies:
            ok = [job for job in train if job[1] == policy and train[job]["ndcg_ratio"] >= args.ndcg_ratio]
            if not ok:
                raise SystemExit(f"{policy}: no setting keeps page nDCG@10 at {args.ndcg_ratio} x organic on train")
            best[policy] = max(ok, key=lambda job: train[job]["revenue_per_1k"])
        dev = dict(run_all([("dev", *job[1:5], seed) for job in best.values() for seed in seeds]))

    def on_dev(policy: str, seed: int = seeds[0]) -> dict[str, Any]:
        return dev[("dev", *best[policy][1:5], seed)]

    out: dict[str, object] = {}
    print(f"{len(jobs)} settings on train; each auction's best with page nDCG@10 >= {args.ndcg_ratio} x organic, on dev:")
    for policy, job in best.items():
        floor, reserve, ecpm = job[2:5]
        got = {k: v for k, v in on_dev(policy).items() if k != "by_day"}
        out[policy] = {"config": {"relevance_floor": floor, "reserve": reserve, "min_expected_revenue": ecpm},
                       "train": train[job], "dev": got, "dev_by_seed": {str(seed): on_dev(policy, seed) for seed in seeds}}
        print(f"{policy:<12} floor {floor}, reserve {reserve}, eCPM floor {ecpm}: train {train[job]['revenue_per_1k']}"
              f"/1k searches; dev {got['revenue_per_1k']}/1k, ad CTR {got['ad_ctr']}, nDCG {got['ndcg_ratio']}x organic")
    ratios = {seed: on_dev("model", seed)["revenue_per_1k"] / on_dev("highest_bid", seed)["revenue_per_1k"] for seed in seeds}
    out["dev_revenue_model_over_highest_bid"] = round(ratios[seeds[0]], 3)
    out["dev_ratio_by_seed"] = {str(seed): round(ratio, 3) for seed, ratio in ratios.items()}
    print("model revenue / highest bid on dev, each tuned: "
          + ", ".join(f"{ratio:.2f}x (seed {seed})" for seed, ratio in ratios.items()))
    if args.oracle:
        ceiling = on_dev("oracle")["revenue_per_1k"] / on_dev("highest_bid")["revenue_per_1k"]
        out["dev_revenue_oracle_over_highest_bid"] = round(ceiling, 3)
        print(f"oracle revenue / highest bid on dev, each tuned: {ceiling:.2f}x")
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
