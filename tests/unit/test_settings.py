from pathlib import Path

import pytest

from models.errors import SettingsError
from app.settings import Settings


def test_defaults_and_environment_overrides():
    s = Settings.from_env({"KAFKA_BROKER": "10.0.0.1:9092;kafka://10.0.0.2:9092",
                           "STREAMRANK_TOPIC_PARTITIONS": "8", "STREAMRANK_STATE_DIR": "/tmp/sr"})
    assert s.topic_partitions == 8
    assert s.state_dir == Path("/tmp/sr")
    assert s.bootstrap_servers == "10.0.0.1:9092,10.0.0.2:9092"
    assert s.faust_broker == "kafka://10.0.0.1:9092;kafka://10.0.0.2:9092"
    assert s.topics.events == "streamrank.events"


@pytest.mark.parametrize(("key", "value"), [("STREAMRANK_TOPIC_PARTITIONS", "many"),
                                            ("STREAMRANK_TOPIC_PARTITIONS", "0"),
                                            ("STREAMRANK_POPULARITY_HALF_LIFE_S", "-3")])
def test_bad_values_fail_fast_naming_the_variable(key, value):
    with pytest.raises(SettingsError, match=key.replace("_S", "") if "HALF" not in key else "half-lives"):
        Settings.from_env({key: value})
