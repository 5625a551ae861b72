"""API key verifiers: what the operator publishes and the gateway checks."""

from __future__ import annotations

import base64

import pytest
from hanshu_api.api_keys import (
    SELECTOR,
    KeyVerifiers,
    keys_from_secret_value,
    published_secret,
    published_secret_name,
    read_published,
)


def test_verifiers_accept_every_listed_key_and_nothing_else() -> None:
    verifiers = KeyVerifiers.of_keys(keys_from_secret_value("old-key\nnew-key\n\n"))
    assert verifiers.matches("old-key")
    assert verifiers.matches("new-key")
    assert not verifiers.matches("new-ke")
    assert not verifiers.matches("")
    assert not KeyVerifiers.of_keys([]).matches("")


def test_salts_differ_so_equal_keys_do_not_give_equal_hashes() -> None:
    a, b = KeyVerifiers.of_keys(["k"]), KeyVerifiers.of_keys(["k"])
    assert a.salt != b.salt
    assert a.hashes != b.hashes
    assert a.same_keys(["k"])
    assert not a.same_keys(["k", "k2"])


def test_the_published_secret_holds_hashes_never_the_key() -> None:
    key = "s3cr3t-api-key-value"
    verifiers = KeyVerifiers.of_keys([key])
    secret = published_secret("hanshu-system", "shop", "orders", verifiers)
    text = secret["stringData"]["verifiers"]
    assert key not in text
    assert key.encode().hex() not in text
    labels = secret["metadata"]["labels"]
    assert all(labels[k] == v for k, v in (p.split("=") for p in SELECTOR.split(",")))
    # As the API server returns it: base64 data instead of stringData.
    served = {**secret, "data": {"verifiers": base64.b64encode(text.encode()).decode()}}
    found = read_published(served)
    assert found is not None
    assert found[0] == ("shop", "orders")
    assert found[1].matches(key)
    assert found[1] == verifiers


@pytest.mark.parametrize(
    "data", [{}, {"verifiers": base64.b64encode(b"not json").decode()}, {"verifiers": "%%"}]
)
def test_anything_else_is_not_a_published_secret(data: dict[str, str]) -> None:
    secret = published_secret("gw", "ns", "t", KeyVerifiers.of_keys(["k"]))
    assert read_published({**secret, "data": data}) is None


def test_published_names_are_unambiguous_and_fit_a_secret_name() -> None:
    assert published_secret_name("a-b", "c") != published_secret_name("a", "b-c")
    long_name = published_secret_name("ns", "t" * 253)
    assert len(long_name) <= 253
    assert long_name.startswith("hanshu-keys.ns.")
