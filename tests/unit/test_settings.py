"""The one settings reader every component uses, and the groups two of them share: a good
value is read, an unset or blank one gives the default, a bad one is a one-line
ConfigError naming the variable, what is wrong and what it takes."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_network
from typing import Any

import pytest
from hanshu_api.settings import (
    DEFAULT_FUNCTION_RESOURCES,
    AsyncWindows,
    ConfigError,
    FunctionDefaults,
    NatsSettings,
    above,
    at_least,
    between,
    boolean,
    choice,
    duration,
    http_url,
    json_object,
    names,
    nats_url,
    networks,
    number,
    port,
    seconds,
    text,
    whole_number,
)

X = "HANSHU_X"


def refusal(read: Callable[[dict[str, str]], Any], value: str) -> str:
    """The message of the ConfigError reading ``value`` as HANSHU_X raises."""
    with pytest.raises(ConfigError) as refused:
        read({X: value})
    assert refused.value.variable == X
    message = str(refused.value)
    assert message.startswith(f"{X} ")
    assert "\n" not in message
    return message


def test_bounds_say_what_they_admit():
    assert str(at_least(1)) == ">= 1"
    assert str(above(0)) == "> 0"
    assert str(between(1, 5)) == "from 1 to 5"
    assert above(0).admits(0.001)
    assert not above(0).admits(0)
    assert at_least(1).admits(1)
    assert not at_least(1).admits(0.5)
    assert between(1, 5).admits(5)
    assert not between(1, 5).admits(6)


def test_text_is_stripped_and_blank_means_the_default():
    assert text({X: "  value "}, X, "default") == "value"
    assert text({X: "   "}, X, "default") == "default"
    assert text({}, X) == ""


def test_whole_number():
    def read(env: dict[str, str]) -> int:
        return whole_number(env, X, 7, between(1, 5), unit="copies")

    assert read({X: "3"}) == 3
    assert read({}) == read({X: " "}) == 7
    assert refusal(read, "1.5") == (
        f"{X} is '1.5', not a whole number; set {X} to a whole number of copies from 1 to 5"
    )
    assert "is '6', out of range" in refusal(read, "6")


def test_port_says_what_zero_means():
    assert port({X: "8080"}, X, 1) == 8080
    assert port({X: "0"}, X, 1, zero="turns it off") == 0
    assert port({}, X, 8000) == 8000
    message = refusal(lambda env: port(env, X, 1), "0")
    assert f"set {X} to a port number from 1 to 65535" in message
    message = refusal(lambda env: port(env, X, 1, zero="turns it off"), "70000")
    assert message.endswith("a port number from 0 to 65535 (0 turns it off)")
    assert "not a whole number" in refusal(lambda env: port(env, X, 1), "http")


@pytest.mark.parametrize("bad", ["soon", "nan", "inf", "0", "-1"])
def test_seconds(bad: str):
    assert seconds({X: "2.5"}, X, 1.0) == 2.5
    assert seconds({}, X, 1.0) == 1.0
    message = refusal(lambda env: seconds(env, X, 1.0), bad)
    assert repr(bad) in message
    assert message.endswith(f"set {X} to a number of seconds > 0")


def test_number_with_a_lower_bound_it_admits():
    assert number({X: "0"}, X, 15.0, at_least(0)) == 0
    assert refusal(lambda env: number(env, X, 2.0, at_least(1)), "0.5").endswith(
        f"set {X} to a number >= 1"
    )


def test_duration_takes_a_unit_or_plain_seconds():
    def read(env: dict[str, str]) -> float:
        return duration(env, X, 3600.0)

    assert read({X: "24h"}) == 86400
    assert read({X: "1m30s"}) == 90
    assert read({X: "86400"}) == 86400
    assert read({}) == 3600
    assert "is 'a day', not a duration" in refusal(read, "a day")
    assert "is '0s', out of range" in refusal(read, "0s")


def test_http_url():
    def read(env: dict[str, str]) -> str:
        return http_url(env, X, example="http://hanshu-operator:8090")

    assert read({X: "http://operator:8090/"}) == "http://operator:8090"
    assert read({X: "https://fn.example.com"}) == "https://fn.example.com"
    assert read({}) == ""
    for bad in ("operator:8090", "ftp://operator", "http://", "http://host:port"):
        message = refusal(read, bad)
        assert repr(bad) in message
        assert message.endswith("http://hanshu-operator:8090, or leave it empty")
    with pytest.raises(ConfigError, match=f"{X} is required; set {X} to an http"):
        http_url({}, X, required=True)


def test_nats_url():
    assert nats_url({X: "tls://nats:4222"}, X) == "tls://nats:4222"
    assert nats_url({}, X) == ""
    message = refusal(lambda env: nats_url(env, X, unset_means="to turn it off"), "http://x")
    assert message == (
        f"{X} is 'http://x', not a nats:// or tls:// URL; set {X} to a nats:// or tls:// "
        "URL such as nats://hanshu-nats:4222, or leave it empty to turn it off"
    )
    with pytest.raises(ConfigError, match=f"{X} is required"):
        nats_url({}, X, required=True)


def test_networks():
    assert networks({X: "10.0.0.0/8, 192.168.1.7,fd00::/8"}, X) == (
        ip_network("10.0.0.0/8"),
        ip_network("192.168.1.7/32"),
        ip_network("fd00::/8"),
    )
    assert networks({}, X) == ()
    assert "has 'ingress', not an address or network" in refusal(
        lambda env: networks(env, X), "10.0.0.0/8, ingress"
    )


def test_names_drop_blanks():
    assert names({X: " a, ,b ,"}, X) == ("a", "b")
    assert names({}, X) == ()


def test_choice_and_boolean_ignore_case():
    levels = ("DEBUG", "INFO")
    assert choice({X: "debug"}, X, "INFO", levels) == "DEBUG"
    assert choice({}, X, "INFO", levels) == "INFO"
    assert refusal(lambda env: choice(env, X, "INFO", levels), "loud").endswith(
        "one of DEBUG, INFO"
    )
    assert boolean({X: "True"}, X, False) is True
    assert boolean({}, X, True) is True
    assert refusal(lambda env: boolean(env, X, False), "yes").endswith("one of true, false")


def test_json_object():
    assert json_object({X: '{"a": 1}'}, X, "an object") == {"a": 1}
    assert json_object({}, X, "an object") is None
    assert "not valid JSON" in refusal(lambda env: json_object(env, X, "an object"), "{a")
    assert "is '[]', not a JSON object" in refusal(lambda env: json_object(env, X, "o"), "[]")


# -- the groups ----------------------------------------------------------------------------


def test_nats_settings_one_rule_for_replicas():
    env = {"HANSHU_NATS_URL": "nats://nats:4222", "HANSHU_NATS_REPLICAS": "3"}
    assert NatsSettings.from_env(env) == NatsSettings("nats://nats:4222", 3)
    assert NatsSettings.from_env({}) == NatsSettings()  # no NATS: async invocation is off
    for bad in ("0", "6", "three"):
        with pytest.raises(ConfigError, match=r"HANSHU_NATS_REPLICAS.* from 1 to 5"):
            NatsSettings.from_env({**env, "HANSHU_NATS_REPLICAS": bad})
    with pytest.raises(ConfigError, match="HANSHU_NATS_URL is required"):
        NatsSettings.from_env({}, required=True)


def test_async_windows():
    assert AsyncWindows.from_env({}) == AsyncWindows(86400.0, 3600.0)
    # What the chart sets (seconds), and the same with units.
    chart = {"HANSHU_STATUS_TTL": "86400", "HANSHU_IDEMPOTENCY_WINDOW": "3600"}
    units = {"HANSHU_STATUS_TTL": "24h", "HANSHU_IDEMPOTENCY_WINDOW": "1h"}
    assert AsyncWindows.from_env(chart) == AsyncWindows.from_env(units) == AsyncWindows()
    with pytest.raises(ConfigError, match="HANSHU_STATUS_TTL is '0'"):
        AsyncWindows.from_env({"HANSHU_STATUS_TTL": "0"})


def test_function_defaults():
    assert FunctionDefaults.from_env({}).resources == DEFAULT_FUNCTION_RESOURCES
    mine = '{"limits": {"memory": "512Mi"}}'
    resources = FunctionDefaults.from_env({"HANSHU_DEFAULT_RESOURCES": mine}).resources
    assert resources == {"limits": {"memory": "512Mi"}}
    for bad, problem in (
        ('{"limits": {"memory": "lots"}}', "has limits.memory='lots', not a quantity"),
        ('{"limit": {}}', "has 'limit', not requests or limits"),
        ("[]", "not a JSON object"),
    ):
        with pytest.raises(ConfigError, match=problem.replace("(", r"\(")):
            FunctionDefaults.from_env({"HANSHU_DEFAULT_RESOURCES": bad})
