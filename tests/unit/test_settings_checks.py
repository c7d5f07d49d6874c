"""Every settings value is checked with an error naming its variable; one set of learner defaults."""
from __future__ import annotations

import dataclasses

import pytest

from app.settings import _RULES, Settings, env_name
from models.errors import SettingsError
from models.online.config import SETTINGS_FIELDS, LearnerConfig

CANDIDATES = (-1, 0, 1.5, 3, 255)


@pytest.mark.parametrize("name", sorted(_RULES))
def test_each_rule_refuses_a_bad_value_naming_its_variable(name):
    ok, _ = _RULES[name]
    bad = next(v for v in CANDIDATES if not ok(v))
    settings = dataclasses.replace(Settings(), **{name: bad})
    with pytest.raises(SettingsError, match=rf"^{env_name(name)} must be .*; got {bad!r}$"):
        settings.check()


def test_every_field_with_a_rule_exists_and_the_defaults_pass():
    names = {f.name for f in dataclasses.fields(Settings)}
    assert set(_RULES) <= names
    Settings().check()


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
    class WithOptional(Settings):
        rows_limit: int | None = None

    assert WithOptional.from_env({"STREAMRANK_ROWS_LIMIT": "7"}).rows_limit == 7
    assert WithOptional.from_env({}).rows_limit is None
    with pytest.raises(SettingsError, match="STREAMRANK_ROWS_LIMIT='x' is not a valid int"):
        WithOptional.from_env({"STREAMRANK_ROWS_LIMIT": "x"})


def test_learner_defaults_are_the_settings_defaults():
    settings, config = Settings(), LearnerConfig()
    assert {k: getattr(config, k) for k in SETTINGS_FIELDS} == {k: getattr(settings, v) for k, v in SETTINGS_FIELDS.items()}


@pytest.mark.parametrize(("field", "value"), [("min_samples", 0), ("guard_ratio", 1.2), ("guard_ratio", -0.1), ("fusion_alpha", 0.0),
                                              ("window", 0), ("keep", 0), ("validation_share", 0)])
def test_learner_config_names_a_bad_value(field, value):
    with pytest.raises(SettingsError, match=f"learner config {field} must be"):
        LearnerConfig(**{field: value})
