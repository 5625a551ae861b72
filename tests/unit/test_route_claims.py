"""Route ownership: the oldest Trigger owns a route, in every namespace."""

from __future__ import annotations

from hanshu_api.models import HttpRoute
from hanshu_api.route_claims import RouteClaim, conflict_message, route_owners


def claim(
    namespace: str, name: str, created: str | None, path: str = "/shop", **http: object
) -> RouteClaim:
    return RouteClaim.of(namespace, name, created, HttpRoute(path=path, **http))  # type: ignore[arg-type]


def test_the_oldest_claim_owns_the_route_across_namespaces() -> None:
    older = claim("team-a", "shop", "2026-01-01T00:00:00Z")
    newer = claim("team-b", "shop", "2026-02-01T00:00:00Z")
    verdicts = route_owners([newer, older])
    assert verdicts[older.key] is None
    assert verdicts[newer.key] == older
    message = conflict_message(newer, older)
    assert "team-a/shop" in message
    assert "/shop" in message


def test_same_creation_time_is_decided_by_namespace_then_name() -> None:
    a = claim("a", "z", "2026-01-01T00:00:00Z")
    b = claim("b", "a", "2026-01-01T00:00:00Z")
    assert route_owners([b, a]) == {a.key: None, b.key: a}


def test_a_claim_without_creation_time_is_the_newest() -> None:
    known = claim("b", "t", "2026-01-01T00:00:00Z")
    unknown = claim("a", "t", None)
    assert route_owners([unknown, known])[unknown.key] == known


def test_host_case_port_and_trailing_slash_do_not_make_a_different_route() -> None:
    a = claim("a", "t", "2026-01-01T00:00:00Z", path="/shop/", host="Shop.example.com")
    b = claim("b", "t", "2026-01-02T00:00:00Z", path="/shop", host="shop.example.com:8080")
    assert route_owners([a, b])[b.key] == a


def test_different_hosts_paths_or_disjoint_methods_do_not_conflict() -> None:
    base = claim("a", "get", "2026-01-01T00:00:00Z", methods=("GET",))
    others = [
        claim("b", "post", "2026-01-02T00:00:00Z", methods=("POST",)),
        claim("c", "host", "2026-01-03T00:00:00Z", host="other.example.com"),
        claim("d", "path", "2026-01-04T00:00:00Z", path="/shop/cart"),
    ]
    assert all(owner is None for owner in route_owners([base, *others]).values())


def test_head_collides_with_get_and_no_methods_collides_with_every_method() -> None:
    get = claim("a", "get", "2026-01-01T00:00:00Z", methods=("GET",))
    head = claim("b", "head", "2026-01-02T00:00:00Z", methods=("HEAD",))
    every = claim("c", "every", "2026-01-03T00:00:00Z")
    verdicts = route_owners([get, head, every])
    assert verdicts[head.key] == get
    assert verdicts[every.key] == get


def test_a_loser_owns_nothing_so_the_next_non_overlapping_claim_still_routes() -> None:
    # c overlaps only b, which lost to a: c stays served (b never took the route).
    a = claim("ns", "a", "2026-01-01T00:00:00Z", methods=("GET",))
    b = claim("ns", "b", "2026-01-02T00:00:00Z", methods=("GET", "POST"))
    c = claim("ns", "c", "2026-01-03T00:00:00Z", methods=("POST",))
    assert route_owners([a, b, c]) == {a.key: None, b.key: a, c.key: None}


def test_when_the_owner_goes_the_next_claim_takes_over() -> None:
    first = claim("a", "t", "2026-01-01T00:00:00Z")
    second = claim("b", "t", "2026-01-02T00:00:00Z")
    third = claim("c", "t", "2026-01-03T00:00:00Z")
    assert route_owners([second, third]) == {second.key: None, third.key: second}
    assert route_owners([first, second, third])[third.key] == first


def test_the_same_path_spelled_encoded_is_the_same_route():
    # The gateway routes on decoded segments: '/sh%6Fp' serves exactly what '/shop' does.
    owner = claim("a", "t", "2026-01-01T00:00:00Z", path="/shop")
    for spelling in ("/sh%6Fp", "/%73hop/"):
        rival = claim("b", "t", "2026-01-02T00:00:00Z", path=spelling)
        assert route_owners([owner, rival])[rival.key] == owner
    chinese = claim("a", "zh", "2026-01-01T00:00:00Z", path="/商店")
    encoded = claim("b", "zh", "2026-01-02T00:00:00Z", path="/%E5%95%86%E5%BA%97")
    assert route_owners([chinese, encoded])[encoded.key] == chinese
    # An encoded slash is inside its segment: '/a%2Fb' is not '/a/b'.
    slash = claim("c", "s", "2026-01-03T00:00:00Z", path="/a%2Fb")
    nested = claim("d", "s", "2026-01-04T00:00:00Z", path="/a/b")
    assert route_owners([slash, nested])[nested.key] is None
