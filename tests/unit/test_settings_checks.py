"""Every settings value is checked with an error naming its variable; one set of learner defaults."""
from __future__ import annotations

import dataclasses

import pytest

from app.settings import Settings, WorkerSettings, env_name
from models.errors import SettingsError
from models.online.config import SETTINGS_FIELDS, LearnerConfig

CANDIDATES = (-1, 0, 1.5, 3, 255)


def _rules() -> dict[str, tuple[str, str, tuple]]:
    """key -> (group, field, rule) for every value that has a rule."""
    found = {}
    for group in dataclasses.fields(Settings):
        for f in dataclasses.fields(getattr(Settings(), group.name)):
            if f.metadata.get("rule"):
                key = next(k for k, name in getattr(Settings(), group.name).keys() if name == f.name)
                found[key] = (group.name, f.name, f.metadata["rule"])
    return found


RULES = _rules()


@pytest.mark.parametrize("key", sorted(RULES))
def test_each_rule_refuses_a_bad_value_naming_its_variable(key):
    group, name, (ok, _) = RULES[key]
    bad = next(v for v in CANDIDATES if not ok(v))
    settings = Settings().replace(**{key: bad})
    assert getattr(getattr(settings, group), name) == bad
    with pytest.raises(SettingsError, match=rf"^{env_name(key)} must be .*; got {bad!r}$"):
        settings.check()


def test_keys_are_unique_and_the_defaults_pass():
    keys = [key for group in dataclasses.fields(Settings) for key, _ in getattr(Settings(), group.name).keys()]
    assert len(keys) == len(set(keys)) == len(Settings().values())
    assert len(RULES) == 55
    Settings().check()


def test_every_value_is_read_from_its_variable_into_its_group():
    env = {env_name(key): str(value) for key, value in Settings().values().items()}
    env.update({"STREAMRANK_WORKER_BATCH_EVENTS": "7", "STREAMRANK_GUARD_RATIO": "0.5", "STREAMRANK_STORE": "memory://",
                "STREAMRANK_ITEM_ENCODER_BATCH": "9", "STREAMRANK_SEARCH_DENSE": "false"})
    s = Settings.from_env(env)
    assert (s.worker.batch_events, s.learner.guard_ratio, s.worker.store) == (7, 0.5, "memory://")
    assert (s.encoder.item_batch, s.search.dense) == (9, False)
    assert s.replace(worker_batch_events=1000, guard_ratio=LearnerConfig.guard_ratio, store="rocksdb://",
                     item_encoder_batch=256, search_dense=True) == Settings()
    with pytest.raises(TypeError, match="STREAMRANK_NO_SUCH"):
        Settings().replace(no_such=1)


@pytest.mark.parametrize(("env", "names"), [
    ({"STREAMRANK_MAX_EVENT_BYTES": "1000", "STREAMRANK_MAX_REQUEST_BYTES": "999"}, "STREAMRANK_MAX_REQUEST_BYTES"),
    ({"STREAMRANK_SEARCH_DEV_FRACTION": "0.6", "STREAMRANK_SEARCH_CALIB_FRACTION": "0.4"},
     "STREAMRANK_SEARCH_DEV_FRACTION"),
])
def test_rules_between_fields_name_them(env, names):
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env)


def test_an_optional_int_is_read_as_an_int():
    @dataclasses.dataclass(frozen=True)
    class WithOptional(WorkerSettings):
        rows_limit: int | None = None

    assert WithOptional.from_env({"STREAMRANK_WORKER_ROWS_LIMIT": "7"}).rows_limit == 7
    assert WithOptional.from_env({}).rows_limit is None
    with pytest.raises(SettingsError, match="STREAMRANK_WORKER_ROWS_LIMIT='x' is not a valid int"):
        WithOptional.from_env({"STREAMRANK_WORKER_ROWS_LIMIT": "x"})


def test_learner_defaults_are_the_settings_defaults():
    settings, config = Settings(), LearnerConfig()
    assert {k: getattr(config, k) for k in SETTINGS_FIELDS} == {k: settings.values()[v] for k, v in SETTINGS_FIELDS.items()}


@pytest.mark.parametrize(("field", "value"), [("min_samples", 0), ("guard_ratio", 1.2), ("guard_ratio", -0.1), ("fusion_alpha", 0.0),
                                              ("window", 0), ("keep", 0), ("validation_share", 0)])
def test_learner_config_names_a_bad_value(field, value):
    with pytest.raises(SettingsError, match=f"learner config {field} must be"):
        LearnerConfig(**{field: value})
