import ssl
from pathlib import Path

import certifi
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from models.errors import SettingsError
from app.kafka_io import client_config
from app.settings import Settings
from app.worker import broker_credentials


def test_defaults_and_environment_overrides():
    s = Settings.from_env({"KAFKA_BROKER": "10.0.0.1:9092;kafka://10.0.0.2:9092",
                           "STREAMRANK_TOPIC_PARTITIONS": "8", "STREAMRANK_STATE_DIR": "/tmp/sr"})
    assert s.topics.partitions == 8
    assert s.runtime.state_dir == Path("/tmp/sr")
    assert s.kafka.bootstrap_servers == "10.0.0.1:9092,10.0.0.2:9092"
    assert s.kafka.faust_broker == "kafka://10.0.0.1:9092;kafka://10.0.0.2:9092"
    assert s.topics.events == "streamrank.events"


@pytest.mark.parametrize(("key", "value"), [("STREAMRANK_TOPIC_PARTITIONS", "many"),
                                            ("STREAMRANK_TOPIC_PARTITIONS", "0"),
                                            ("STREAMRANK_POPULARITY_HALF_LIFE_S", "-3"),
                                            ("STREAMRANK_GATEWAY_CPU_SLICE_MS", "0.05"),  # the kernel's least is 0.1
                                            ("STREAMRANK_GATEWAY_CPU_SLICE_MS", "-1")])
def test_bad_values_fail_fast_naming_the_variable(key, value):
    with pytest.raises(SettingsError, match=key):
        Settings.from_env({key: value})


@pytest.mark.parametrize(("env", "message"), [
    ({"STREAMRANK_KAFKA_SECURITY_PROTOCOL": "SASL"}, "STREAMRANK_KAFKA_SECURITY_PROTOCOL must be one of"),
    ({"STREAMRANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "STREAMRANK_KAFKA_SASL_MECHANISM": "GSSAPI",
      "STREAMRANK_KAFKA_USERNAME": "w", "STREAMRANK_KAFKA_PASSWORD": "p"}, "STREAMRANK_KAFKA_SASL_MECHANISM"),
    ({"STREAMRANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "STREAMRANK_KAFKA_USERNAME and"),
    ({"STREAMRANK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMRANK_KAFKA_USERNAME": "w"}, "STREAMRANK_KAFKA_PASSWORD"),
    ({"STREAMRANK_LEARNER_KAFKA_USERNAME": "learner"}, "STREAMRANK_LEARNER_KAFKA_PASSWORD go together"),
])
def test_kafka_security_settings_are_checked(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


SASL_ENV = {"KAFKA_BROKER": "127.0.0.1:19094", "STREAMRANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "STREAMRANK_KAFKA_USERNAME": "worker", "STREAMRANK_KAFKA_PASSWORD": "w-pw"}


def test_client_config_is_plaintext_by_default():
    assert client_config(Settings()) == {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}
    assert broker_credentials(Settings()) is None


def test_client_config_and_faust_credentials_carry_sasl_settings():
    s = Settings.from_env(SASL_ENV)
    assert client_config(s) == {"bootstrap_servers": "127.0.0.1:19094", "security_protocol": "SASL_PLAINTEXT",
                                "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "worker",
                                "sasl_plain_password": "w-pw"}
    # Faust's worker connects with the same arguments (as its aiokafka driver turns them into).
    assert credentials_to_aiokafka_auth(broker_credentials(s)) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "worker", "sasl_plain_password": "w-pw", "ssl_context": None}


def test_the_learner_role_logs_in_as_the_learner_when_it_has_a_principal():
    s = Settings.from_env(SASL_ENV)
    assert client_config(s, role="learner")["sasl_plain_username"] == "worker"  # none of its own: the process's
    s = Settings.from_env({**SASL_ENV, "STREAMRANK_LEARNER_KAFKA_USERNAME": "learner",
                           "STREAMRANK_LEARNER_KAFKA_PASSWORD": "l-pw"})
    learner = client_config(s, role="learner")
    assert (learner["sasl_plain_username"], learner["sasl_plain_password"]) == ("learner", "l-pw")
    assert client_config(s)["sasl_plain_username"] == "worker"


def test_sasl_ssl_gets_a_tls_context_from_the_ca_file():
    cafile = certifi.where()
    s = Settings.from_env({**SASL_ENV, "STREAMRANK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                           "STREAMRANK_KAFKA_SSL_CAFILE": cafile})
    config = client_config(s)
    assert config["security_protocol"] == "SASL_SSL"
    assert isinstance(config["ssl_context"], ssl.SSLContext)
    assert config["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert credentials_to_aiokafka_auth(broker_credentials(s))["security_protocol"] == "SASL_SSL"
