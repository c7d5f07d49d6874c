"""The bottom layer: what crosses a process boundary, readable without Faust, aiohttp or settings.

Records on the input topics, the names of topics and changelogs, the signed model-updates
format and dead-letter headers. It lives under `tables/` because the tables are its first
readers and `tables/` already sits below the agents and the gateway and above `models/`: the
worker, the gateway, the learner and the jobs all import it, and it imports only `models/`
and `tables/` (tests/unit/test_layering.py holds it to that; docs/design.md, "Layers").
"""
