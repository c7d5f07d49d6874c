"""The one settings object: read once from the environment, failing fast on bad values."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any

from models.errors import SettingsError
from models.online.config import LearnerConfig

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _default_data_dir() -> Path:
    return (ROOT.parent / "shared" / "data").resolve()


@dataclass(frozen=True)
class Topics:
    """Kafka topic names; all derive from one prefix so several shops can share a cluster."""

    prefix: str = "streamrank"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def catalog(self) -> str:
        return f"{self.prefix}.catalog"

    @property
    def item_events(self) -> str:
        return f"{self.prefix}.item-events"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dead-letters"

    @property
    def samples(self) -> str:
        return f"{self.prefix}.samples"

    @property
    def model_updates(self) -> str:
        return f"{self.prefix}.model-updates"

    @property
    def item_vectors(self) -> str:
        """Compacted: each catalog item's text vector, by item id (written by `streamrank encoder`)."""
        return f"{self.prefix}.item-vectors"

    @property
    def campaigns(self) -> str:
        """Sponsored-products campaigns, keyed by campaign id (POST /v1/campaigns writes them)."""
        return f"{self.prefix}.campaigns"

    @property
    def model_commands(self) -> str:
        """Manual rollback/promote commands from the gateways' admin API to the learner."""
        return f"{self.prefix}.model-commands"


@dataclass(frozen=True)
class Settings:
    """Every knob of streamrank. Field `x` is read from env `STREAMRANK_X` (KAFKA_BROKER too)."""

    kafka_broker: str = "kafka://127.0.0.1:19092"
    app_id: str = "streamrank"
    topic_prefix: str = "streamrank"
    topic_partitions: int = 4
    store: str = "rocksdb://"
    state_dir: Path = ROOT / "var"
    data_dir: Path = field(default_factory=_default_data_dir)
    # Input limits: one record on a topic or in a request, and one HTTP body.
    max_event_bytes: int = 64 * 1024
    max_request_bytes: int = 4 * 1024 * 1024
    max_batch_events: int = 5000
    # The worker's agents take events in batches of at most this many, or what came within the
    # wait (seconds): rows and records are written once per batch (app/batched_writes.py).
    worker_batch_events: int = 1000
    worker_batch_wait_s: float = 0.02
    # Profiles keep this many recent items (newest last).
    recent_items: int = 50
    # Half-life of the time-decayed popularity, in seconds of event time.
    popularity_half_life_s: float = 7 * 24 * 3600.0
    # A trending score compares a short half-life to the long one.
    trending_half_life_s: float = 6 * 3600.0
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    worker_metrics_port: int = 9101
    # Dense (MiniLM) retrieval beside BM25 in /v1/search; off saves memory and start-up time.
    search_dense: bool = True
    # Weight of the online click model's item attractiveness in search ranking (0: off).
    search_click_weight: float = 0.1
    # Weight of the dense cosine against the relative BM25 score in hybrid search.
    search_dense_weight: float = 0.5
    # How often the gateway writes new item vectors to its on-disk cache (seconds; also on stop).
    vector_cache_save_s: float = 60.0
    # A gateway encodes catalog texts itself (a lone gateway with no `streamrank encoder`); off,
    # it only encodes queries and takes item vectors from the item-vectors topic.
    search_encode_catalog: bool = False
    # Item texts the encoder encodes per batch (and publishes together).
    item_encoder_batch: int = 256
    # How often the encoder writes its on-disk vector cache (seconds; also on stop).
    item_encoder_save_s: float = 60.0
    # How often the gateway looks for a new model version in model_dir (seconds).
    model_poll_s: float = 5.0
    # Weight of the embedding model against item transitions when both score an item.
    embedding_blend: float = 0.5
    recommend_cache_size: int = 100_000  # recommendation lists kept per gateway (0 turns the cache off)
    # Search: text encoder (all-MiniLM-L6-v2, offline), retrieval and fine-tuning knobs.
    encoder_max_length: int = 32
    encoder_batch_size: int = 128
    encoder_query_cache: int = 4096
    # Intra-op threads of torch on CPU (0: torch's default). 1 by default: on a small shared
    # machine, extra threads spin against other processes (measured 7x slower with 2 on 2 busy cores).
    torch_threads: int = 1
    search_candidates: int = 200  # per retriever (BM25 and dense) before the ranker
    search_dev_fraction: float = 0.2
    search_calib_fraction: float = 0.1
    finetune_epochs: int = 20
    finetune_batch_size: int = 256
    finetune_lr: float = 2e-4
    finetune_temperature: float = 0.05
    finetune_negatives: int = 8192  # random catalog rows per step (0: the full catalog)
    # Hard negatives (zero-shot top rows) hurt here: many unjudged top products are relevant.
    finetune_hard_negatives: int = 0
    # Epochs of fine-tuning the MiniLM query encoder itself (before the adapter); -1: 3 on CUDA,
    # 0 on CPU, where a step takes ~2 s on a busy 2-core machine (3 epochs: ~8 min, +0.007 nDCG dense).
    finetune_encoder_epochs: int = -1
    finetune_encoder_batch_size: int = 64
    finetune_encoder_lr: float = 3e-5
    # Recommendation (SASRec + transitions): epochs and a wall-clock cap per training run
    # (validation run and final run each; the final run repeats the validation run's epochs).
    rec_epochs: int = 30
    rec_time_budget_s: float = 270.0
    rec_dim: int = 64
    rec_negatives: int = 512  # shared sampled negatives per batch (0: full softmax)
    rec_lr: float = 1e-3  # 3e-3 converges faster but overfits: worse blend on Beauty (0.0630 vs 0.0650)
    rec_batch_size: int = 256
    # Online learning: `streamrank learner` processes (one active, others hot standbys; samples
    # and model-updates topics have one partition each, so one learner sees every sample in order).
    # learner_enabled runs one inside the leader worker instead (off: workers run only the agents).
    learner_enabled: bool = False
    learner_metrics_port: int = 9102  # the learner process's /metrics (0: none)
    # A dead active learner's lock (its consumer group membership) is freed after this long;
    # then a standby takes over from the last checkpoint.
    learner_session_timeout_s: float = 10.0
    learner_batch: int = 512  # samples per micro-batch
    learner_poll_s: float = 0.2  # how often the learner looks for new samples
    version_interval_s: float = 5.0  # a version is proposed this often (if enough samples came)
    checkpoint_interval_s: float = 30.0  # the learner's state and offsets are saved this often
    # The learner's guard and fusion; defaults are models/online/config.py's (one set of them).
    guard_min_samples: int = LearnerConfig.min_samples  # samples scored since the last version before any decision
    guard_ratio: float = LearnerConfig.guard_ratio  # promote only if live NDCG@10 >= ratio x the serving version's
    fusion_alpha: float = LearnerConfig.fusion_alpha  # weight of the new model against the last good one
    # Share of rank samples the learner scores for its guard: scoring ranks the whole catalog
    # two or three times per sample, learning needs far less.
    learner_validation_share: float = LearnerConfig.validation_share
    online_dim: int = 64
    online_capacity: int = 100_000  # embedding rows per shard (the memory budget)
    online_shards: int = 0  # 0: one per device present
    online_min_count: int = 1  # sightings before an id gets its own row
    impression_window_s: float = 1800.0  # a click joins an impression shown this recently
    # Bearer token for /v1/admin/*; empty: the admin API answers 403.
    admin_token: str = ""
    # API keys (comma-separated) a shop's servers send as `X-API-Key` to the intake and read
    # routes; empty: those routes are open (health, readiness and metrics always are).
    api_keys: str = ""
    # Kafka client security, for every client (worker, learner, gateways, jobs, benches):
    # PLAINTEXT, SASL_PLAINTEXT, SASL_SSL or SSL; SASL mechanism PLAIN, SCRAM-SHA-256 or -512.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-256"
    kafka_username: str = ""
    kafka_password: str = ""
    kafka_ssl_cafile: str = ""  # CA bundle for SASL_SSL/SSL (empty: the system's)
    # The learner's own principal (only it may write model-updates); empty: kafka_username/password.
    learner_kafka_username: str = ""
    learner_kafka_password: str = ""
    # HMAC-SHA256 key that signs model-updates records (versions, decisions, commands).
    # Empty: a random key kept in <state_dir>/secrets/model-signing.key, made by the first
    # process that needs it (processes on other machines must be given the same key).
    model_signing_key: str = ""
    # An event or catalog change whose ts is further ahead of the receiver's clock than this
    # is refused (400 / dead letter): one record must not move a clock or freeze an item.
    max_clock_skew_s: float = 300.0
    # Bytes of recommendation lists the gateway caches (besides recommend_cache_size entries).
    recommend_cache_bytes: int = 64 * 1024 * 1024
    # Sponsored slots in /v1/search and /v1/recommend (models/ads; docs/design.md "Sponsored products").
    ads_enabled: bool = True
    # 0-based page positions ads may take, comma-separated: one ad at most per position.
    # (Reserve price and least pCTR x bid are models/ads' AuctionConfig defaults.)
    ads_slots: str = "0,4"
    ads_relevance_floor: float = 0.8  # least relative relevance of an ad's item on the page

    @property
    def ad_slots(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.ads_slots.split(",") if s.strip())

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def bootstrap_servers(self) -> str:
        """`host:port[,host:port]` for aiokafka, from the faust-style broker URL."""
        return ",".join(u.split("://", 1)[-1] for u in self.kafka_broker.split(";"))

    @property
    def faust_broker(self) -> str:
        return ";".join(u if "://" in u else f"kafka://{u}" for u in self.kafka_broker.split(";"))

    @property
    def model_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def online_model_dir(self) -> Path:
        return self.model_dir / "online"

    @property
    def embedding_cache_dir(self) -> Path:
        return self.state_dir / "cache" / "embeddings"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = env_name(f.name)
            raw = env.get(key)
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(key, raw, f.type)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Raise SettingsError naming the first bad value: each field's rule, then those between fields."""
        for name, (ok, rule) in _RULES.items():
            value = getattr(self, name)
            if not ok(value):
                raise SettingsError(f"{env_name(name)} must be {rule}; got {value!r}")
        if self.max_request_bytes < self.max_event_bytes:
            raise SettingsError("STREAMRANK_MAX_REQUEST_BYTES must be at least STREAMRANK_MAX_EVENT_BYTES "
                                f"({self.max_event_bytes}); got {self.max_request_bytes}")
        if self.search_dev_fraction + self.search_calib_fraction >= 1:
            raise SettingsError("STREAMRANK_SEARCH_DEV_FRACTION + STREAMRANK_SEARCH_CALIB_FRACTION must be below 1; "
                                f"got {self.search_dev_fraction} + {self.search_calib_fraction}")
        self._check_security()

    def _check_security(self) -> None:
        if self.kafka_security_protocol not in KAFKA_SECURITY_PROTOCOLS:
            raise SettingsError(f"STREAMRANK_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}; "
                                f"got {self.kafka_security_protocol!r}")
        if self.kafka_sasl_mechanism not in KAFKA_SASL_MECHANISMS:
            raise SettingsError(f"STREAMRANK_KAFKA_SASL_MECHANISM must be one of {', '.join(KAFKA_SASL_MECHANISMS)}; "
                                f"got {self.kafka_sasl_mechanism!r}")
        if self.kafka_security_protocol.startswith("SASL") and not (self.kafka_username and self.kafka_password):
            raise SettingsError("STREAMRANK_KAFKA_USERNAME and STREAMRANK_KAFKA_PASSWORD are required with "
                                f"STREAMRANK_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}")
        if bool(self.learner_kafka_username) != bool(self.learner_kafka_password):
            raise SettingsError("STREAMRANK_LEARNER_KAFKA_USERNAME and STREAMRANK_LEARNER_KAFKA_PASSWORD go together")

    @property
    def api_key_list(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.api_keys.split(",") if k.strip())


def env_name(field_name: str) -> str:
    """The environment variable a settings field is read from."""
    return "KAFKA_BROKER" if field_name == "kafka_broker" else f"STREAMRANK_{field_name.upper()}"


def _at_least(n: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= n), f"at least {n}"


def _between(low: float, high: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: low < v <= high), f"above {low} and at most {high}"


_POSITIVE: tuple[Callable[[Any], bool], str] = ((lambda v: v > 0), "above 0")


def _valid_slots(raw: object) -> bool:
    if not isinstance(raw, str):
        return False
    parts = [p.strip() for p in raw.split(",")]
    return bool(parts) and all(p.isdigit() for p in parts) and len(set(map(int, parts))) == len(parts)
_EVEN: tuple[Callable[[Any], bool], str] = ((lambda v: v >= 2 and v % 2 == 0), "even and at least 2 (two heads)")
_SHARE = _between(0, 1)

# One rule per field that has one; check() names the variable and the value it refused.
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "topic_partitions": _at_least(1),
    "max_event_bytes": _at_least(256),
    "worker_batch_events": _at_least(1),
    "worker_batch_wait_s": _POSITIVE,
    "popularity_half_life_s": _POSITIVE,
    "trending_half_life_s": _POSITIVE,
    "rec_epochs": _at_least(1),
    "rec_time_budget_s": _POSITIVE,
    "rec_dim": _EVEN,
    "rec_negatives": _at_least(0),
    "rec_lr": _POSITIVE,
    "rec_batch_size": _at_least(1),
    **{name: _at_least(1) for name in ("encoder_max_length", "encoder_batch_size", "search_candidates",
                                       "finetune_batch_size", "finetune_encoder_batch_size", "item_encoder_batch")},
    "torch_threads": _at_least(0),
    "search_dev_fraction": _at_least(0),
    "search_calib_fraction": _POSITIVE,
    "finetune_lr": _POSITIVE,
    "finetune_encoder_lr": _POSITIVE,
    "finetune_temperature": _POSITIVE,
    "recommend_cache_size": _at_least(0),
    "recommend_cache_bytes": _at_least(0),
    "learner_session_timeout_s": _at_least(1),
    "learner_batch": _at_least(1),
    "version_interval_s": _POSITIVE,
    "guard_min_samples": _at_least(1),
    "guard_ratio": _SHARE,
    "fusion_alpha": _SHARE,
    "learner_validation_share": _SHARE,
    "online_dim": _at_least(2),
    "online_capacity": _at_least(1),
    "online_min_count": _at_least(1),
    "impression_window_s": _POSITIVE,
    "max_clock_skew_s": _POSITIVE,
    "ads_slots": (_valid_slots, "distinct non-negative integers separated by commas, e.g. 0,4"),
    "ads_relevance_floor": (lambda v: 0 <= v <= 1, "between 0 and 1"),
}


def _parse(key: str, raw: str, kind: Any) -> Any:
    # Annotations are strings here (`from __future__ import annotations`): "int | None" is
    # an int when set (an unset or empty variable keeps the default).
    kind = " | ".join(k for k in (part.strip() for part in str(kind).split("|")) if k != "None")
    if kind == "bool":
        if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise SettingsError(f"{key}={raw!r} is not a boolean (true/false)")
        return raw.lower() in ("1", "true", "yes")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw).expanduser().resolve()
    except ValueError as exc:
        raise SettingsError(f"{key}={raw!r} is not a valid {kind}") from exc
    return raw
