"""The CRDs' CEL rules as a real kube-apiserver costs them before it accepts a CRD.

cel-python, which evaluates our rules in tests/crd_schema.py, does not estimate cost, so a
CRD it admits can still be refused by kube-apiserver with "estimated rule cost exceeds
budget" (issue 8: the Trigger CRD on Kubernetes 1.32, "by factor of 1.258292x"). The model
in tests/crd_schema.py (``rule_costs``) replays the apiserver's static estimate for the CEL
our rules use, with the figures of kubernetes/kubernetes (apiextensions-apiserver
pkg/apis/apiextensions/validation/validation.go for the limits and the cardinality,
apiserver pkg/apis/cel/config.go for the runtime limits, apiserver pkg/cel/common/schemas.go
for the sizes) and of google/cel-go (checker/cost.go and common/cost.go for the costs):

- a string counts 4 x its maxLength (bytes per code point), or 3 MiB without one; a list
  its maxItems, a map its maxProperties, or as many minimal items as fit in 3 MiB; a map
  key (which cannot declare maxLength) 253 characters, a ConfigMap key's limit, where the
  apiserver assumes less; metadata.name at the root 3 MiB unless the schema declares both
  metadata.name and metadata.generateName;
- ``s.matches(re)`` costs ceil((size(s) + 1) x 0.1) x ceil(len(re) x 0.25); ``x in list``
  size(list); all() / exists() / filter() the list's size x (the body + the macro's own
  per-iteration cost), so nested lists multiply; has() and size() are O(1);
- a rule runs once per item of every list and map above it (its cardinality), and the
  apiserver compares MaxCost x cardinality with StaticEstimatedCostLimit (10,000,000 per
  rule), the sum with StaticEstimatedCRDCostLimit (100,000,000 per CRD); at run time one
  evaluation may cost PerCallLimit (1,000,000), all rules on one object
  RuntimeCELCostBudget (10,000,000).

The model is checked against the apiserver's own answer (the old cron rule estimates
12,582,921, exactly issue 8's 1.258292x), and our CRDs must stay a factor of 10 under every
limit, with every value a rule reads bounded, by bounds no real object comes near.
Run ``python -m tests.crd_schema [crd.yaml ...]`` for the table of figures.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.crd_schema import (
    PER_CALL_LIMIT,
    STATIC_ESTIMATED_COST_LIMIT,
    STATIC_ESTIMATED_CRD_COST_LIMIT,
    admit,
    cost_report,
    estimate_rule,
    load_crds,
    rule_costs,
    schema_of,
)

CRDS = load_crds()
# Our estimate must leave the apiserver's a factor of 10: the model is rough by design.
MARGIN = 10


def _node(kind: str, path: str) -> dict[str, Any]:
    node = schema_of(CRDS[kind])
    for part in path.split("."):
        node = node["items"] if part == "[*]" else node["properties"][part]
    return node


# The rule, on a cron string without maxLength, that Kubernetes 1.32 refused in issue 8 with
# "estimated rule cost exceeds budget by factor of 1.258292x".
REFUSED_CRON_RULE = (
    "self.matches('^(@(yearly|annually|monthly|weekly|daily|hourly)|([0-9*,/-]+|[0-9*,/-]*"
    "[A-Za-z]{3}[A-Za-z0-9*,/-]*)( +([0-9*,/-]+|[0-9*,/-]*[A-Za-z]{3}[A-Za-z0-9*,/-]*)){4})$')"
)


def test_the_model_reproduces_the_apiservers_refusal_of_the_unbounded_cron():
    cost, unbounded = estimate_rule(REFUSED_CRON_RULE, {"type": "string"}, "spec.schedule.cron")
    # self: 1; ceil((3 MiB - 2 + 1) x 0.1) = 314,573 traversals x ceil(158 x 0.25) = 40
    assert cost == 1 + 314_573 * 40 == 12_582_921
    assert f"{cost / STATIC_ESTIMATED_COST_LIMIT:f}x" == "1.258292x"
    assert unbounded == ["spec.schedule.cron (string) declares no maxLength"]
    # The CRD's cron rule is still that rule, now on a bounded string.
    assert _node("Trigger", "spec.schedule.cron")["x-kubernetes-validations"][0]["rule"] == (
        REFUSED_CRON_RULE
    )


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_value_a_rule_reads_is_bounded(kind: str):
    costs = rule_costs(CRDS[kind])
    assert costs, f"{kind} has no rules: the cost model found nothing to check"
    unbounded = [f"{c.where}: {note}" for c in costs for note in c.unbounded]
    assert unbounded == [], "add maxLength / maxItems / maxProperties:\n" + "\n".join(unbounded)


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_rule_is_far_under_the_apiservers_cost_budget(kind: str):
    costs = rule_costs(CRDS[kind])
    report = cost_report(costs)
    print(f"\n{kind}\n{report}")
    for cost in sorted(costs, key=lambda c: -c.total):
        assert cost.total * MARGIN <= STATIC_ESTIMATED_COST_LIMIT, f"{cost.where}\n{report}"
        assert cost.cost * MARGIN <= PER_CALL_LIMIT, f"{cost.where}\n{report}"
    total = sum(c.total for c in costs)
    assert total * MARGIN <= STATIC_ESTIMATED_CRD_COST_LIMIT, f"{kind} total {total:,}\n{report}"


# The bounds are there for the estimator, not for users: each is far above any real value.
GENEROUS_BOUNDS = [
    ("Function", "metadata.name", "maxLength", 253),  # any object name (the rule says 63)
    ("Function", "spec.env", "maxItems", 1024),
    ("Function", "spec.env.[*].name", "maxLength", 1024),
    ("Function", "spec.code.inline", "maxProperties", 64),  # and 1 MiB in all, a ConfigMap
    ("Trigger", "spec.schedule.cron", "maxLength", 256),  # every minute and hour listed
    ("Trigger", "spec.schedule.timeZone", "maxLength", 64),  # IANA names are <= 32
    ("Trigger", "spec.http.host", "maxLength", 253),  # a DNS name
    ("Trigger", "spec.http.path", "maxLength", 1024),
    ("Trigger", "spec.http.methods", "maxItems", 16),  # 7 methods exist
    ("Trigger", "spec.http.auth.header", "maxLength", 256),
    ("Trigger", "spec.http.cors.allowOrigins", "maxItems", 64),
    ("Trigger", "spec.http.cors.allowOrigins.[*]", "maxLength", 512),  # scheme://host:port
    ("Trigger", "spec.http.cors.allowHeaders", "maxItems", 64),
    ("Trigger", "spec.http.cors.allowHeaders.[*]", "maxLength", 256),
]


@pytest.mark.parametrize(
    ("kind", "path", "bound", "at_least"),
    GENEROUS_BOUNDS,
    ids=[f"{k}.{p}.{b}" for k, p, b, _ in GENEROUS_BOUNDS],
)
def test_bounds_are_ones_users_do_not_reach(kind: str, path: str, bound: str, at_least: int):
    declared = _node(kind, path).get(bound)
    assert declared is not None, f"{kind} {path} declares no {bound}"
    assert declared >= at_least, f"{kind} {path}: {bound} {declared} is one users may reach"


def test_long_but_real_values_are_admitted():
    every_minute = ",".join(str(m) for m in range(60))
    every_hour = ",".join(str(h) for h in range(24))
    trigger = {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Trigger",
        "metadata": {"name": "t"},
        "spec": {
            "functionRef": {"name": "f"},
            "schedule": {"cron": f"{every_minute} {every_hour} * * *"},
        },
    }
    _, errors = admit(trigger, CRDS)
    assert errors == []
    trigger["spec"] = {
        "functionRef": {"name": "f"},
        "http": {
            "path": "/" + "a" * 1023,
            "methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            "cors": {"allowOrigins": [f"https://app{i}.example.com" for i in range(64)]},
        },
    }
    _, errors = admit(trigger, CRDS)
    assert errors == []
    function = {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "a" * 63},
        "spec": {
            "handler": "index.handler",
            "code": {"inline": {"index.py": ""}},
            "env": [{"name": f"VAR_{i}", "value": "x"} for i in range(1024)],
        },
    }
    _, errors = admit(function, CRDS)
    assert errors == []


# --- the model itself, on small schemas whose costs are worked out by hand ---


def _strings(max_length: int | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    if max_length is not None:
        node["maxLength"] = max_length
    return node


def _list(items: dict[str, Any], max_items: int | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "array", "items": items}
    if max_items is not None:
        node["maxItems"] = max_items
    return node


def test_matches_costs_string_length_times_regex_length():
    # self: 1; ceil((4 x 100 + 1) x 0.1) = 41 traversals x ceil(len('^a+$') x 0.25) = 1
    assert estimate_rule("self.matches('^a+$')", _strings(100), "x") == (42, [])
    # A regex 4 times longer costs 4 times more per character.
    assert estimate_rule("self.matches('^a+$^a+$^a+$^a+$')", _strings(100), "x")[0] == 1 + 41 * 4


def test_list_macros_multiply_and_nested_lists_multiply_again():
    lists = _list(_list(_strings(8), max_items=5), max_items=10)
    # x.matches: 1 + ceil(33 x 0.1) x 1 = 5; inner all over 5: 1 + 1 + 5 x (3 + 5) = 42;
    # outer all over 10: 1 + 1 + 10 x (3 + 42) = 452.
    cost, unbounded = estimate_rule("self.all(xs, xs.all(x, x.matches('^a$')))", lists, "x")
    assert (cost, unbounded) == (452, [])
    # exists() keeps one more unit per item (the negated loop condition).
    assert estimate_rule("self.exists(xs, xs.size() > 0)", lists, "x")[0] == 1 + 1 + 10 * (4 + 3)


def test_in_costs_the_size_of_the_list():
    assert estimate_rule("'*' in self", _list(_strings(512), max_items=64), "x") == (1 + 64, [])


def test_what_a_rule_reads_must_be_bounded_but_has_is_no_read():
    schema = {
        "type": "object",
        "properties": {"names": _list(_strings()), "flag": {"type": "boolean"}},
    }
    cost, unbounded = estimate_rule("has(self.names) && self.flag", schema, "x")
    assert unbounded == []
    assert cost == 2 + 2
    _, unbounded = estimate_rule("self.names.all(n, n.startsWith('a'))", schema, "x")
    assert unbounded == [
        "x.names (list) declares no maxItems",
        "x.names[*] (string) declares no maxLength",
    ]


def test_a_rule_at_the_root_reads_an_unbounded_name_unless_metadata_declares_it():
    root: dict[str, Any] = {"type": "object", "properties": {"metadata": {"type": "object"}}}
    rule = "self.metadata.name.matches('^[a-z]+$')"
    cost, unbounded = estimate_rule(rule, root)
    assert unbounded == ["metadata.name (string) declares no maxLength"]
    assert cost == 3 + 314_573 * 2  # 3 MiB of name, read at 0.1 per byte, x a 2-unit regex
    root["properties"]["metadata"]["properties"] = {"name": _strings(253)}
    assert estimate_rule(rule, root)[1] != []  # the apiserver ignores name alone ...
    root["properties"]["metadata"]["properties"]["generateName"] = _strings(253)
    assert estimate_rule(rule, root) == (3 + 102 * 2, [])  # ... and honours both


def test_a_rule_under_a_list_runs_once_per_item():
    item = {
        "type": "object",
        "properties": {"name": _strings(16)},
        "x-kubernetes-validations": [{"rule": "self.name.startsWith('x')"}],
    }
    crd = copy.deepcopy(CRDS["Trigger"])
    schema_of(crd)["properties"]["spec"]["properties"]["lists"] = _list(
        _list(item, max_items=7), max_items=100
    )
    (cost,) = [c for c in rule_costs(crd) if c.path == "spec.lists[*][*]"]
    assert (cost.cost, cost.cardinality, cost.total) == (3, 700, 2100)
