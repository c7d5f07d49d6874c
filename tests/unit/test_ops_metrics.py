"""The dashboard and the alert rules under ops/ name only metrics the processes export."""
from __future__ import annotations

import json
import re

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import Metrics
from app.settings import ROOT

OPS = ROOT / "ops"
NAME = re.compile(r"\b((?:streamrank|process|python)_[a-z0-9_]+)")


def exported_names() -> set[str]:
    """Every sample name a scrape can carry (histogram and counter suffixes included)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {family.name + suffix
            for family in text_string_to_metric_families(generate_latest(Metrics().registry).decode())
            for suffix in suffixes.get(family.type, ("",))}


def expressions() -> list[str]:
    rules = yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((OPS / "grafana" / "streamrank.json").read_text())
    return exprs + [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_metric_in_the_dashboard_and_the_alerts_is_exported():
    exported = exported_names()
    used = {name for expr in expressions() for name in NAME.findall(expr)}
    assert used, "no metric names found: the pattern no longer matches the files"
    assert used - exported == set()
