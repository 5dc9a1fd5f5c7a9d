"""The shipped ops files agree with the code: every metric an alert or the docs name exists."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import acw_sync.metrics as metrics

ROOT = Path(__file__).resolve().parents[2]


def exported_names() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("acw_"):
            continue
        names.add(family.name)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
        names.update(family.name + s for s in suffixes.get(family.type, []))
    figures = {
        "broker_ok": True, "queues": {"acw": 1}, "unacked": 0, "dead_letters": 0,
        "workers_alive": 1, "unsynced": 0, "oldest_unsynced_age": 0.0,
        "circuits": {"crm": "closed"},
    }  # fmt: skip
    names.update(f.name for f in metrics.StateCollector(lambda: figures).collect())
    return names


def test_alert_rules_and_docs_name_real_metrics() -> None:
    rules = yaml.safe_load((ROOT / "ops" / "alerts.yml").read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Operating acw-sync\n")
    docs = readme[start : readme.index("\n## ", start + 1)]
    known = exported_names()
    for text in (exprs, docs):
        used = set(re.findall(r"\bacw_[a-z_]+[a-z]\b", text))
        metric_like = {u for u in used if not u.startswith(("acw_sync", "acw_connector"))}
        assert metric_like - known == set()


def test_prometheus_scrapes_server_and_workers() -> None:
    config = yaml.safe_load((ROOT / "ops" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["acw-server"]["static_configs"][0]["targets"] == ["server:8000"]
    assert jobs["acw-worker"]["dns_sd_configs"][0]["port"] == 9101
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "--metrics-port" in compose["services"]["worker"]["command"]
    assert compose["services"]["prometheus"]["profiles"] == ["monitoring"]
