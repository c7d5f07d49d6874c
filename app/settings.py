"""The one settings object: read once from the environment, failing fast on bad values.

Values are grouped per component (`settings.kafka.broker`, `settings.worker.batch_events`,
...). Each value keeps one flat name, its *key* (`worker_batch_events`), which is also its
environment variable without the prefix (`STREAMRANK_WORKER_BATCH_EVENTS`; `KAFKA_BROKER` for
the broker). Errors, the README, child processes' environments and `Settings.replace` use keys,
so a value is spelled the same way wherever it is set from outside the code.
"""
from __future__ import annotations

import math
import os
import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from models.ads.auction import AuctionConfig
from models.errors import SettingsError
from models.online.config import LearnerConfig

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

Rule = tuple[Callable[[Any], bool], str]


def _at_least(n: float) -> Rule:
    return (lambda v: v >= n), f"at least {n}"


def _between(low: float, high: float) -> Rule:
    return (lambda v: low < v <= high), f"above {low} and at most {high}"


_POSITIVE: Rule = ((lambda v: v > 0), "above 0")
_NON_NEGATIVE: Rule = ((lambda v: v >= 0 and math.isfinite(v)), "a finite number, 0 or more")
_EVEN: Rule = ((lambda v: v >= 2 and v % 2 == 0), "even and at least 2 (two heads)")
_SHARE = _between(0, 1)


CPU_PRIORITIES = ("idle", "low", "normal")


def _valid_slots(raw: object) -> bool:
    if not isinstance(raw, str):
        return False
    parts = [p.strip() for p in raw.split(",")]
    return bool(parts) and all(p.isdigit() for p in parts) and len(set(map(int, parts))) == len(parts)


def knob(default: Any = dataclasses.MISSING, *, rule: Rule | None = None, key: str = "",
         factory: Callable[[], Any] | None = None) -> Any:
    """A settings field with its rule; `key` where it is not the group's prefix + the field's name."""
    metadata = {"rule": rule, "key": key}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


class Group:
    """One component's values; `PREFIX` + a field's name is its key unless the field names one."""

    PREFIX: ClassVar[str] = ""

    @classmethod
    def keys(cls) -> Iterator[tuple[str, str]]:
        """(key, field name) of every value of the group, in declaration order."""
        for f in fields(cls):  # type: ignore[arg-type]
            yield f.metadata.get("key") or cls.PREFIX + f.name, f.name

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Any:
        """The group with every value set (and non-empty) in `env` parsed; unchecked."""
        types = {f.name: f.type for f in fields(cls)}  # type: ignore[arg-type]
        values: dict[str, Any] = {}
        for key, name in cls.keys():
            raw = env.get(env_name(key))
            if raw is not None and raw != "":
                values[name] = _parse(env_name(key), raw, types[name])
        return cls(**values)

    def check(self) -> None:
        """Raise SettingsError naming the first bad value: each field's rule, then those between fields."""
        rules = {f.name: f.metadata.get("rule") for f in fields(self)}  # type: ignore[arg-type]
        for key, name in self.keys():
            value, rule = getattr(self, name), rules[name]
            if rule is not None and not rule[0](value):
                raise SettingsError(f"{env_name(key)} must be {rule[1]}; got {value!r}")
        self.check_between()

    def check_between(self) -> None:
        """Rules that relate two values of the group (none by default)."""


def _default_data_dir() -> Path:
    return (ROOT.parent / "shared" / "data").resolve()


@dataclass(frozen=True)
class KafkaSettings(Group):
    """The brokers and the security of every Kafka client (worker, learner, gateways, jobs, benches)."""

    PREFIX: ClassVar[str] = "kafka_"
    broker: str = knob("kafka://127.0.0.1:19092", key="kafka_broker")  # env KAFKA_BROKER
    # PLAINTEXT, SASL_PLAINTEXT, SASL_SSL or SSL; SASL mechanism PLAIN, SCRAM-SHA-256 or -512.
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-256"
    username: str = ""
    password: str = ""
    ssl_cafile: str = ""  # CA bundle for SASL_SSL/SSL (empty: the system's)

    @property
    def bootstrap_servers(self) -> str:
        """`host:port[,host:port]` for aiokafka, from the faust-style broker URL."""
        return ",".join(u.split("://", 1)[-1] for u in self.broker.split(";"))

    @property
    def faust_broker(self) -> str:
        return ";".join(u if "://" in u else f"kafka://{u}" for u in self.broker.split(";"))

    def check_between(self) -> None:
        if self.security_protocol not in KAFKA_SECURITY_PROTOCOLS:
            raise SettingsError(f"STREAMRANK_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}; "
                                f"got {self.security_protocol!r}")
        if self.sasl_mechanism not in KAFKA_SASL_MECHANISMS:
            raise SettingsError(f"STREAMRANK_KAFKA_SASL_MECHANISM must be one of {', '.join(KAFKA_SASL_MECHANISMS)}; "
                                f"got {self.sasl_mechanism!r}")
        if self.security_protocol.startswith("SASL") and not (self.username and self.password):
            raise SettingsError("STREAMRANK_KAFKA_USERNAME and STREAMRANK_KAFKA_PASSWORD are required with "
                                f"STREAMRANK_KAFKA_SECURITY_PROTOCOL={self.security_protocol}")


@dataclass(frozen=True)
class Topics(Group):
    """Names on Kafka: topics derive from one prefix so several shops can share a cluster; the app
    id names the worker's consumer group and its tables' changelogs (tables/wire/names.py)."""

    PREFIX: ClassVar[str] = "topic_"
    prefix: str = "streamrank"
    partitions: int = knob(4, rule=_at_least(1))
    app_id: str = knob("streamrank", key="app_id")

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
class RuntimeSettings(Group):
    """What every process shares: where state and data live, torch threads, the model-updates key."""

    state_dir: Path = ROOT / "var"
    data_dir: Path = knob(factory=_default_data_dir)
    # Intra-op threads of torch on CPU (0: torch's default). 1 by default: on a small shared
    # machine, extra threads spin against other processes (measured 7x slower with 2 on 2 busy cores).
    torch_threads: int = knob(1, rule=_at_least(0))
    # HMAC-SHA256 key that signs model-updates records (versions, decisions, commands).
    # Empty: a random key kept in <state_dir>/secrets/model-signing.key, made by the first
    # process that needs it (processes on other machines must be given the same key).
    model_signing_key: str = ""

    @property
    def model_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def online_model_dir(self) -> Path:
        return self.model_dir / "online"

    @property
    def embedding_cache_dir(self) -> Path:
        return self.state_dir / "cache" / "embeddings"


@dataclass(frozen=True)
class LimitSettings(Group):
    """Input limits: one record on a topic or in a request, one HTTP body, and clock skew."""

    PREFIX: ClassVar[str] = "max_"
    event_bytes: int = knob(64 * 1024, rule=_at_least(256))
    request_bytes: int = 4 * 1024 * 1024
    batch_events: int = 5000
    # An event or catalog change whose ts is further ahead of the receiver's clock than this
    # is refused (400 / dead letter): one record must not move a clock or freeze an item.
    clock_skew_s: float = knob(300.0, rule=_POSITIVE)

    def check_between(self) -> None:
        if self.request_bytes < self.event_bytes:
            raise SettingsError("STREAMRANK_MAX_REQUEST_BYTES must be at least STREAMRANK_MAX_EVENT_BYTES "
                                f"({self.event_bytes}); got {self.request_bytes}")


@dataclass(frozen=True)
class FeatureSettings(Group):
    """The streamed features the agents keep in tables (profiles, popularity, trending)."""

    recent_items: int = 50  # profiles keep this many recent items (newest last)
    # Half-life of the time-decayed popularity, in seconds of event time.
    popularity_half_life_s: float = knob(7 * 24 * 3600.0, rule=_POSITIVE)
    # A trending score compares a short half-life to the long one.
    trending_half_life_s: float = knob(6 * 3600.0, rule=_POSITIVE)


@dataclass(frozen=True)
class WorkerSettings(Group):
    """The Faust worker (`faust -A app worker`)."""

    PREFIX: ClassVar[str] = "worker_"
    store: str = knob("rocksdb://", key="store")
    # The agents take events in batches of at most this many, or what came within the wait
    # (seconds): rows and records are written once per batch (app/batched_writes.py).
    batch_events: int = knob(1000, rule=_at_least(1))
    batch_wait_s: float = knob(0.02, rule=_POSITIVE)
    # A fetch waits for a MiB of records or this long (seconds). Kafka's default answers one
    # record at once: below a few thousand events/s the worker spent most of its CPU on
    # fetches of a few records each (app/faust_compat.py, 8.). Freshness pays at most this.
    fetch_wait_s: float = knob(0.1, rule=_POSITIVE)
    # An event id is refused as a duplicate for this long after it was taken (seconds); then its
    # row is dropped (tables/expiry.py), else the table grows by a row per event for good.
    dedup_window_s: float = knob(24 * 3600.0, rule=_POSITIVE)
    metrics_port: int = 9101


@dataclass(frozen=True)
class GatewaySettings(Group):
    """The HTTP gateway."""

    PREFIX: ClassVar[str] = "gateway_"
    host: str = "127.0.0.1"
    port: int = 8080
    # Bearer token for /v1/admin/*; empty: the admin API answers 403.
    admin_token: str = knob("", key="admin_token")
    # API keys (comma-separated) a shop's servers send as `X-API-Key` to the intake and read
    # routes; empty: those routes are open (health, readiness and metrics always are).
    api_keys: str = knob("", key="api_keys")
    # How often the gateway looks for a new model version in model_dir (seconds).
    model_poll_s: float = knob(5.0, key="model_poll_s")
    # How often the gateway writes new item vectors to its on-disk cache (seconds; also on stop).
    vector_cache_save_s: float = knob(60.0, key="vector_cache_save_s")
    # Connections the kernel queues before the gateway accepts them (capped by net.core.somaxconn).
    # aiohttp's 128 overflowed when a burst of clients connected at once: the kernel dropped their
    # handshakes, and each one waited for its SYN retransmission, a second or more (bench/scale.py).
    listen_backlog: int = knob(4096, rule=_at_least(1))
    # How long a thread may hold the GIL while another waits for it (ms; Python's default is 5).
    # A gateway's threads (a version's signature check, search's query and catalog threads) hold
    # it while the event loop waits for it (bench/version_install.py).
    gil_switch_ms: float = knob(0.5, rule=_POSITIVE)
    # The CPU slice the gateway asks the kernel for (ms; 0: the kernel's, 1.4 ms here; Linux 6.12
    # or later, app/cpu_priority.py). A shorter one lets a request's wakeup preempt the worker
    # or the learner rather than wait out their slices, but a gateway busy for longer than it is
    # preempted sooner too: 0.2 made bench/serve.py's live pass slower (docs/design.md).
    cpu_slice_ms: float = knob(0.0, rule=((lambda v: v == 0 or 0.1 <= v <= 100), "0 (the kernel's) or 0.1 to 100"))
    # The gateway's glibc malloc (app/allocator.py; 0: glibc's default): arenas, and the size
    # from which a block is mapped on its own (and unmapped when freed) rather than cut from the heap.
    malloc_arena_max: int = knob(2, rule=_at_least(0))
    malloc_mmap_threshold: int = knob(128 * 1024, rule=_at_least(0))

    @property
    def api_key_list(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.api_keys.split(",") if k.strip())


@dataclass(frozen=True)
class RecommendSettings(Group):
    """/v1/recommend: blending and the gateway's cache of recommendation lists."""

    PREFIX: ClassVar[str] = "recommend_"
    # Weight of the embedding model against item transitions when both score an item.
    embedding_blend: float = knob(0.5, key="embedding_blend")
    cache_size: int = knob(100_000, rule=_at_least(0))  # lists kept per gateway (0 turns the cache off)
    cache_bytes: int = knob(64 * 1024 * 1024, rule=_at_least(0))  # and their bytes at most
    # Seconds a cached list of an online learner version is still served after a newer version
    # came (the learner publishes every few seconds; 0 ends every list at each version). A
    # shopper's own event, a rollback and any other model's install end a list at once.
    online_staleness_s: float = knob(30.0, rule=_at_least(0))


@dataclass(frozen=True)
class SearchSettings(Group):
    """/v1/search: retrieval and ranking, and the split of judgments the search model is trained on."""

    PREFIX: ClassVar[str] = "search_"
    # Dense (MiniLM) retrieval beside BM25; off saves memory and start-up time.
    dense: bool = True
    # Weight of the online click model's item attractiveness in search ranking (0: off).
    click_weight: float = 0.1
    # Weight of the dense cosine against the relative BM25 score in hybrid search.
    dense_weight: float = 0.5
    # A gateway encodes catalog texts itself (a lone gateway with no `streamrank encoder`); off,
    # it only encodes queries and takes item vectors from the item-vectors topic.
    encode_catalog: bool = False
    candidates: int = knob(200, rule=_at_least(1))  # per retriever (BM25 and dense) before the ranker
    dev_fraction: float = knob(0.2, rule=_at_least(0))
    calib_fraction: float = knob(0.1, rule=_POSITIVE)

    def check_between(self) -> None:
        if self.dev_fraction + self.calib_fraction >= 1:
            raise SettingsError("STREAMRANK_SEARCH_DEV_FRACTION + STREAMRANK_SEARCH_CALIB_FRACTION must be below 1; "
                                f"got {self.dev_fraction} + {self.calib_fraction}")


@dataclass(frozen=True)
class EncoderSettings(Group):
    """The text encoder (all-MiniLM-L6-v2, offline) for queries, and `streamrank encoder` for items."""

    PREFIX: ClassVar[str] = "encoder_"
    max_length: int = knob(32, rule=_at_least(1))
    batch_size: int = knob(128, rule=_at_least(1))
    query_cache: int = 4096
    # Item texts the encoder process encodes per batch (and publishes together).
    item_batch: int = knob(256, rule=_at_least(1), key="item_encoder_batch")
    # How often the encoder process writes its on-disk vector cache (seconds; also on stop).
    item_save_s: float = knob(60.0, key="item_encoder_save_s")


@dataclass(frozen=True)
class FinetuneSettings(Group):
    """`streamrank finetune`: the search model's query tower and ranker."""

    PREFIX: ClassVar[str] = "finetune_"
    epochs: int = 20
    batch_size: int = knob(256, rule=_at_least(1))
    lr: float = knob(2e-4, rule=_POSITIVE)
    temperature: float = knob(0.05, rule=_POSITIVE)
    negatives: int = 8192  # random catalog rows per step (0: the full catalog)
    # Hard negatives (zero-shot top rows) hurt here: many unjudged top products are relevant.
    hard_negatives: int = 0
    # Epochs of fine-tuning the MiniLM query encoder itself (before the adapter); -1: 3 on CUDA,
    # 0 on CPU, where a step takes ~2 s on a busy 2-core machine (3 epochs: ~8 min, +0.007 nDCG dense).
    encoder_epochs: int = -1
    encoder_batch_size: int = knob(64, rule=_at_least(1))
    encoder_lr: float = knob(3e-5, rule=_POSITIVE)


@dataclass(frozen=True)
class RecSettings(Group):
    """`streamrank train` (SASRec + transitions): epochs and a wall-clock cap per training run
    (validation run and final run each; the final run repeats the validation run's epochs)."""

    PREFIX: ClassVar[str] = "rec_"
    epochs: int = knob(30, rule=_at_least(1))
    time_budget_s: float = knob(270.0, rule=_POSITIVE)
    dim: int = knob(64, rule=_EVEN)
    negatives: int = knob(512, rule=_at_least(0))  # shared sampled negatives per batch (0: full softmax)
    lr: float = knob(1e-3, rule=_POSITIVE)  # 3e-3 converges faster but overfits: worse blend on Beauty (0.0630 vs 0.0650)
    batch_size: int = knob(256, rule=_at_least(1))


@dataclass(frozen=True)
class LearnerSettings(Group):
    """Online learning: `streamrank learner` processes (one active, others hot standbys; samples
    and model-updates topics have one partition each, so one learner sees every sample in order)."""

    PREFIX: ClassVar[str] = "learner_"
    # Runs one learner inside the leader worker instead (off: workers run only the agents).
    enabled: bool = False
    metrics_port: int = 9102  # the learner process's /metrics (0: none)
    # A dead active learner's lock (its consumer group membership) is freed after this long;
    # then a standby takes over from the last checkpoint.
    session_timeout_s: float = knob(10.0, rule=_at_least(1))
    batch: int = knob(512, rule=_at_least(1))  # samples per micro-batch
    poll_s: float = 0.2  # how often the learner looks for new samples
    # A version is proposed this often (if enough samples came).
    version_interval_s: float = knob(5.0, rule=_POSITIVE, key="version_interval_s")
    # The largest model-updates record: a full version (a rollback, a republish after a restart)
    # of the 1M-shopper scale shop is 14 MB at 600k events, over Kafka's usual 1-10 MB. The
    # topic is created with it (an existing one needs max.message.bytes raised by hand); at
    # most the brokers' socket.request.max.bytes (100 MB by default).
    version_max_bytes: int = knob(64 * 1024 * 1024, rule=_at_least(1024 * 1024))
    # The learner's state and offsets are saved this often.
    checkpoint_interval_s: float = knob(30.0, key="checkpoint_interval_s")
    # The guard and fusion; defaults are models/online/config.py's (one set of them).
    # Samples scored since the last version before any decision:
    guard_min_samples: int = knob(LearnerConfig.min_samples, rule=_at_least(1), key="guard_min_samples")
    # Promote only if live NDCG@10 >= ratio x the serving version's:
    guard_ratio: float = knob(LearnerConfig.guard_ratio, rule=_SHARE, key="guard_ratio")
    # Weight of the new model against the last good one:
    fusion_alpha: float = knob(LearnerConfig.fusion_alpha, rule=_SHARE, key="fusion_alpha")
    # Share of rank samples scored for the guard: scoring ranks the whole catalog two or three
    # times per sample, learning needs far less.
    validation_share: float = knob(LearnerConfig.validation_share, rule=_SHARE)
    # The neural model (SASRec) learns beside the count model once `streamrank train` has
    # written a rec-neural version; off: only the count model learns.
    neural: bool = True
    # Share of the learner's wall time the neural model may spend learning: the samples beyond
    # it are not learned by it (counted), so the learner keeps up with the stream; 1: it learns all.
    neural_share: float = knob(0.3, rule=_SHARE)
    # Samples (scored before they are learned) that pick the neural model's blend weight.
    neural_blend_samples: int = knob(2000, rule=_at_least(1))
    # The learner's CPU priority: "idle" takes only CPU time no other process wants (Linux
    # SCHED_IDLE; nice 10 and its autogroup at 19 where it heads a session of its own:
    # app/cpu_priority.py), "low" is nice 10, "normal" leaves it. On shared cores a learner at
    # normal priority delays the worker and the gateway; it catches up when the stream is quieter.
    cpu_priority: str = knob("idle", rule=(lambda v: v in CPU_PRIORITIES, "idle, low or normal"))
    # The learner's own Kafka principal (only it may write model-updates); empty: the kafka group's.
    kafka_username: str = ""
    kafka_password: str = ""

    def check_between(self) -> None:
        if bool(self.kafka_username) != bool(self.kafka_password):
            raise SettingsError("STREAMRANK_LEARNER_KAFKA_USERNAME and STREAMRANK_LEARNER_KAFKA_PASSWORD go together")


@dataclass(frozen=True)
class OnlineSettings(Group):
    """The online models' size, and how clicks join impressions into samples."""

    PREFIX: ClassVar[str] = "online_"
    dim: int = knob(64, rule=_at_least(2))
    capacity: int = knob(100_000, rule=_at_least(1))  # embedding rows per shard (the memory budget)
    shards: int = 0  # 0: one per device present
    min_count: int = knob(1, rule=_at_least(1))  # sightings before an id gets its own row
    # A click joins an impression shown this recently.
    impression_window_s: float = knob(1800.0, rule=_POSITIVE, key="impression_window_s")


@dataclass(frozen=True)
class AdsSettings(Group):
    """Sponsored slots in /v1/search and /v1/recommend (models/ads; docs/design.md "Sponsored products")."""

    PREFIX: ClassVar[str] = "ads_"
    enabled: bool = True
    # 0-based page positions ads may take, comma-separated: one ad at most per position.
    slots: str = knob("0,4", rule=(_valid_slots, "distinct non-negative integers separated by commas, e.g. 0,4"))
    relevance_floor: float = knob(0.8, rule=(lambda v: 0 <= v <= 1, "between 0 and 1"))  # of an ad's item on the page
    # Least price per click (a lower bid never runs), and least pCTR x bid per impression, which an
    # ad also pays over its pCTR per click. `streamrank evaluate ads --reserve` compares reserves offline.
    reserve: float = knob(AuctionConfig.reserve, rule=_NON_NEGATIVE)
    min_expected_revenue: float = knob(AuctionConfig.min_expected_revenue, rule=_NON_NEGATIVE)
    # (item, query) click counts the learner's click model keeps for ads' pCTR and ships to the
    # gateways, the least recently counted dropped first (a gateway holds ~360 bytes per key).
    pair_counts: int = knob(100_000, rule=_at_least(2))

    @property
    def positions(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.slots.split(",") if s.strip())


@dataclass(frozen=True)
class Settings:
    """Every knob of streamrank, one group per component."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    recommend: RecommendSettings = field(default_factory=RecommendSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    rec: RecSettings = field(default_factory=RecSettings)
    learner: LearnerSettings = field(default_factory=LearnerSettings)
    online: OnlineSettings = field(default_factory=OnlineSettings)
    ads: AdsSettings = field(default_factory=AdsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = cls(**{f.name: _group_type(f).from_env(env) for f in fields(cls)})
        settings.check()
        return settings

    def check(self) -> None:
        """Raise SettingsError naming the first bad value, group by group."""
        for group in self._groups():
            group.check()

    def values(self) -> dict[str, Any]:
        """Every value by its key (`worker_batch_events`), in declaration order."""
        return {key: getattr(group, name) for group in self._groups() for key, name in group.keys()}

    def replace(self, **values: Any) -> Settings:
        """A copy with values changed, named by key: `replace(worker_batch_events=200)` (unchecked,
        as `dataclasses.replace` is)."""
        changes: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            if key not in _PLACES:
                raise TypeError(f"no setting {key!r} (env {env_name(key)})")
            group, name = _PLACES[key]
            changes.setdefault(group, {})[name] = value
        return dataclasses.replace(self, **{g: dataclasses.replace(getattr(self, g), **c) for g, c in changes.items()})

    def _groups(self) -> Iterator[Group]:
        return (getattr(self, f.name) for f in fields(self))


def _group_type(f: dataclasses.Field[Any]) -> type[Group]:
    kind = f.default_factory
    assert isinstance(kind, type) and issubclass(kind, Group)
    return kind


# key -> (group attribute, field name); keys are unique (tests/unit/test_settings_checks.py).
_PLACES: dict[str, tuple[str, str]] = {
    key: (f.name, name) for f in fields(Settings) for key, name in _group_type(f).keys()}


def env_name(key: str) -> str:
    """The environment variable a settings key is read from."""
    return "KAFKA_BROKER" if key == "kafka_broker" else f"STREAMRANK_{key.upper()}"


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
