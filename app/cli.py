"""`streamrank` command line: one subcommand per job, each in its own module under app/jobs."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from models.errors import StreamrankError

# Each module defines `register(subparsers)`, which adds a parser whose `run(args)` returns an
# exit code. Modules are imported lazily so `streamrank replay` does not load torch.
JOBS = {
    "replay": "app.jobs.replay",
    "gateway": "app.jobs.gateway",
    "encoder": "app.jobs.encoder",
    "learner": "app.jobs.learner",
    "topics": "app.jobs.topics",
    "train": "app.jobs.train",
    "finetune": "app.jobs.finetune",
    "evaluate": "app.jobs.evaluate",
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamrank", description=__doc__)
    sub = parser.add_subparsers(dest="job", required=True, metavar="JOB")
    wanted = argv[0] if argv and argv[0] in JOBS else None
    for name, module in JOBS.items():
        if wanted is None or wanted == name:
            importlib.import_module(module).register(sub)
        else:  # a placeholder keeps `--help` listing every job without importing it
            sub.add_parser(name, help=f"see `streamrank {name} --help`")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser(argv).parse_args(argv)
    try:
        limit_job_threads()
        return int(args.run(args) or 0)
    except StreamrankError as exc:
        print(f"streamrank {args.job}: {exc}", file=sys.stderr)
        return 2


def limit_job_threads() -> None:
    """Every job's BLAS and torch threads, before it loads numpy or torch (see app/threads.py)."""
    from app.settings import Settings
    from app.threads import limit_threads

    limit_threads(Settings.from_env().runtime.torch_threads)


if __name__ == "__main__":
    raise SystemExit(main())
