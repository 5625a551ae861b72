"""kmock set up as a Kubernetes API with Hanshu's resources (tests and benchmarks), and
taught server-side apply, which kmock (a naive dict-merging PATCH) does not implement.

The apply emulation is a small model of the real one, enough for a few managers:

- A PATCH with ``Content-Type: application/apply-patch+yaml`` must name a ``fieldManager``
  and carry apiVersion, kind and the URL's name (and namespace, if any); it creates the
  object when missing.
- Each object has owners: a field manager with its operation, ``Apply`` (its last applied
  manifest) or ``Update`` (the fields its plain writes changed: merge patches, the scale
  and status subresources; the manager is ``?fieldManager=`` or the User-Agent's product).
- A field the applier applied before and omits now is removed from the object unless
  another owner still holds it. Lists are atomic (one field): no list items are merged.
- The applied fields are then written over the object; ``status`` in a manifest is
  ignored, and fields nobody applied (status, server metadata) stay.
- Applying a field another owner holds with a different value is a 409 Conflict, unless
  ``force=true``, which takes the field over; applying the same value shares it.
- A plain write that changes a field's value takes it from every other owner.
- ``metadata.managedFields`` lists the owners and their fields (identity excluded).
- A Deployment whose ``spec.replicas`` nobody sets gets the API server's default, 1.

Objects nobody applied are kmock's as before (a PATCH merges). Not modelled: the owner of
what a POST created (the creator), map-lists merged by key,
defaults of other fields, validation. A real API server decides those: the e2e suite
(tests/e2e/test_apply.py) removes an inline file and a toleration on a real cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import jsonpatch
import kmock
import yaml
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.versions import FUNCTION_VERSION_KIND, FUNCTION_VERSION_PLURAL
from kmock._internal import k8s, k8s_dicts

APPLY_PATCH = "application/apply-patch+yaml"

FieldPath = tuple[str, ...]
Manifest = Mapping[str, Any]
ObjectKey = tuple[Any, str | None, str]
Owner = tuple[str, str]  # (field manager, "Apply" or "Update"), as in managedFields

# What names an object: part of every manifest, owned by nobody.
_IDENTITY: set[FieldPath] = {
    ("apiVersion",),
    ("kind",),
    ("metadata", "name"),
    ("metadata", "namespace"),
}

_MISSING = object()
# The API server's defaults for fields nobody sets, for the kinds whose default matters here.
_DEFAULTS: dict[tuple[str, str], dict[FieldPath, Any]] = {
    ("apps", "deployments"): {("spec", "replicas"): 1},
}


def declare_resources(emulator: kmock.KubernetesEmulator) -> None:
    """The built-in resources plus our CRDs, as discovery would show them."""
    emulator.resources.load_bundled()
    verbs = {"get", "list", "watch", "create", "patch", "update", "delete"}
    for plural, kind, short in (
        (FUNCTION_PLURAL, "Function", "fn"),
        (TRIGGER_PLURAL, "Trigger", "trg"),
        (FUNCTION_VERSION_PLURAL, FUNCTION_VERSION_KIND, "fnv"),
    ):
        emulator.resources[f"{API_VERSION}/{plural}"] = kmock.ResourceInfo(
            kind=kind,
            singular=kind.lower(),
            namespaced=True,
            verbs=verbs,
            subresources={"status"},
            shortnames={short},
            categories={"hanshu"},
        )


def write_kubeconfig(path: Path, server: str, namespace: str = "default") -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: kmock\n"
        f"clusters: [{{name: kmock, cluster: {{server: '{server}'}}}}]\n"
        "contexts: [{name: kmock, context: "
        f"{{cluster: kmock, user: kmock, namespace: {namespace}}}}}]\n"
        "users: [{name: kmock, user: {}}]\n"
    )
    return path


# The apply rule, as pure functions of plain dicts.


def field_paths(manifest: Manifest, prefix: FieldPath = ()) -> set[FieldPath]:
    """The leaf fields a manifest sets; a list or an empty map is one field."""
    paths: set[FieldPath] = set()
    for key, value in manifest.items():
        path = (*prefix, key)
        if isinstance(value, Mapping) and value:
            paths |= field_paths(value, path)
        else:
            paths.add(path)
    return paths


def owned_paths(fields: Manifest) -> set[FieldPath]:
    """The fields an owner holds: an object's identity belongs to nobody."""
    return field_paths(fields) - _IDENTITY


def value_at(obj: Manifest, path: FieldPath) -> Any:
    current: Any = obj
    for key in path:
        if not isinstance(current, Mapping) or key not in current:
            return _MISSING
        current = current[key]
    return current


def without_fields(obj: Manifest, paths: Iterable[FieldPath]) -> dict[str, Any]:
    """A copy without those fields, and without the maps that removing them emptied."""
    result = copy.deepcopy(dict(obj))
    for path in paths:
        parents = [result]
        for key in path[:-1]:
            child = parents[-1].get(key)
            if not isinstance(child, dict):
                break
            parents.append(child)
        else:
            parents[-1].pop(path[-1], None)
            for depth in range(len(parents) - 1, 0, -1):
                if parents[depth]:
                    break
                del parents[depth - 1][path[depth - 1]]
    return result


def only_fields(obj: Manifest, paths: Iterable[FieldPath]) -> dict[str, Any]:
    """A copy with just those fields (as the object has them)."""
    result: dict[str, Any] = {}
    for path in paths:
        value = value_at(obj, path)
        if value is not _MISSING:
            _merge(result, _nested(path, value))
    return result


def _merge(target: dict[str, Any], manifest: Manifest) -> None:
    for key, value in manifest.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict) and value:
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _nested(path: FieldPath, value: Any) -> dict[str, Any]:
    for key in reversed(path):
        value = {key: value}
    return dict(value)


def applicable(manifest: Manifest) -> dict[str, Any]:
    """What of a manifest apply writes: never status, never the server's managedFields."""
    return without_fields(
        {k: v for k, v in manifest.items() if k != "status"}, [("metadata", "managedFields")]
    )


def conflicts(manifest: Manifest, owners: Mapping[Owner, Manifest]) -> dict[Owner, set[FieldPath]]:
    """Per other owner, the fields it holds with a value this manifest changes."""
    found: dict[Owner, set[FieldPath]] = {}
    mine = owned_paths(manifest)
    for owner, fields in owners.items():
        differing = {
            path
            for path in mine & owned_paths(fields)
            if value_at(fields, path) != value_at(manifest, path)
        }
        if differing:
            found[owner] = differing
    return found


def apply_manifest(
    live: Manifest | None,
    manifest: Manifest,
    previous: Manifest | None = None,
    others: Iterable[Manifest] = (),
) -> dict[str, Any]:
    """The object after ``manifest`` is applied by a manager whose last apply was
    ``previous``, while ``others`` are what the other owners hold."""
    manifest = applicable(manifest)
    kept = field_paths(manifest).union(*(field_paths(o) for o in others))
    dropped = field_paths(previous or {}) - kept
    result = without_fields(live or {}, dropped)
    _merge(result, manifest)
    return result


def merge_patch(obj: Manifest, patch: Manifest) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386), as kmock applies one: None removes a key."""
    result = copy.deepcopy(dict(obj))
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            current = result.get(key)
            result[key] = merge_patch(current if isinstance(current, dict) else {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def still_owned(fields: Manifest, live: Manifest) -> dict[str, Any]:
    """What an owner holds after someone else's write: not the fields it changed."""
    changed = [p for p in owned_paths(fields) if value_at(live, p) != value_at(fields, p)]
    return without_fields(fields, changed)


def written_fields(patch: Manifest, before: Manifest, after: Manifest) -> set[FieldPath]:
    """The fields a plain write changed (and did not remove): its writer owns them now."""
    return {
        path
        for path in field_paths(patch)
        if value_at(after, path) is not _MISSING and value_at(before, path) != value_at(after, path)
    }


def _fields_v1(fields: Manifest) -> dict[str, Any]:
    return {
        f"f:{key}": _fields_v1(value) if isinstance(value, Mapping) else {}
        for key, value in fields.items()
    }


def managed_fields(owners: Mapping[Owner, Manifest]) -> list[dict[str, Any]]:
    return [
        {
            "manager": manager,
            "operation": operation,
            "fieldsType": "FieldsV1",
            "fieldsV1": _fields_v1(only_fields(fields, owned_paths(fields))),
        }
        for (manager, operation), fields in owners.items()
    ]


def with_defaults(resource: kmock.resource, obj: dict[str, Any]) -> dict[str, Any]:
    for path, default in _DEFAULTS.get((resource.group, resource.plural), {}).items():
        if value_at(obj, path) is _MISSING:
            _merge(obj, _nested(path, default))
    return obj


# The emulator.


def _bad_request(message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=400, reason="BadRequest", message=message)


def _header(request: kmock.Request, name: str) -> str:
    return str(next((v for k, v in request.headers.items() if k.lower() == name), ""))


def is_apply(request: kmock.Request) -> bool:
    """Whether a request is a server-side apply (by its content type)."""
    content_type = _header(request, "content-type").split(";")[0].strip()
    return request.method == "PATCH" and content_type == APPLY_PATCH


def _writer(request: kmock.Request) -> Owner:
    """Who a plain write is by: ``?fieldManager=``, else the User-Agent's product name,
    as the API server names it."""
    agent = _header(request, "user-agent").split("/")[0].strip()
    return (request.params.get("fieldManager") or agent or "unknown", "Update")


@attrs.define(kw_only=True)
class ApplyingEmulator(kmock.KubernetesEmulator):
    """kmock's emulator that also understands server-side apply (see the module's doc)."""

    # Who holds which fields of each object: (manager, operation) -> the fields, as values.
    _owners: dict[ObjectKey, dict[Owner, dict[str, Any]]] = attrs.field(factory=dict, init=False)

    def owners(self, resource: str, namespace: str, name: str) -> dict[Owner, dict[str, Any]]:
        """Each owner of an object and the fields it holds (for assertions)."""
        return dict(self._owners.get((kmock.resource(resource), namespace, name), {}))

    async def _serve_list(self, request: kmock.Request) -> Any:
        """A list in pages, as the API server serves ``?limit=`` (kmock returns
        everything at once): the ``continue`` token here is the offset of the next page."""
        listing = await super()._serve_list(request)
        limit = int(request.params.get("limit") or 0)
        if limit <= 0 or not isinstance(listing, dict):
            return listing
        start = int(request.params.get("continue") or 0)
        items = listing.get("items") or []
        page = {**listing, "items": items[start : start + limit]}
        if start + limit < len(items):
            page["metadata"] = {**(listing.get("metadata") or {}), "continue": str(start + limit)}
        return page

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is None or request.name is None:
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                name = (request.data.get("metadata") or {}).get("name")
                self._owners.pop((request.resource, request.namespace, name), None)
            return await super()._handle(request)
        key: ObjectKey = (request.resource, request.namespace, request.name)
        if is_apply(request) and request.subresource is None:
            async with self._lock:
                await self._apply(key, request)
            return await self._respond(request)
        if request.action == kmock.action.UPDATE and self._owners.get(key):
            async with self._lock:
                handled = await self._write(key, request)
            if handled:
                return await self._respond(request)
        try:
            return await super()._handle(request)
        finally:
            if request.action == kmock.action.DELETE and (
                key not in self.objects or self.objects[key].deleted
            ):
                self._owners.pop(key, None)

    async def _respond(self, request: kmock.Request) -> Any:
        # The object is already written: skip kmock's own PATCH merge, keep its responses
        # (and its request log, kept before _handle is called).
        return await super(kmock.KubernetesEmulator, self)._handle(request)

    async def _apply(self, key: ObjectKey, request: kmock.Request) -> None:
        body = request.data if request.data is not None else yaml.safe_load(request.text)
        manager = request.params.get("fieldManager")
        if not manager:
            raise _bad_request("PATCH: fieldManager is required for apply requests")
        if not isinstance(body, dict) or not body.get("apiVersion") or not body.get("kind"):
            raise _bad_request("apply: the manifest needs apiVersion and kind")
        meta = body.get("metadata") or {}
        if meta.get("name") != request.name:
            raise _bad_request("apply: metadata.name must be the name in the URL")
        if meta.get("namespace") not in (None, request.namespace):
            raise _bad_request("apply: metadata.namespace must be the namespace in the URL")
        manifest = applicable(body)
        exists = key in self.objects and not self.objects[key].deleted
        live = self.objects[key].raw if exists else None
        owners = dict(self._owners.get(key, {})) if exists else {}
        previous = owners.pop((manager, "Apply"), None)
        taken = conflicts(manifest, owners)
        if taken and request.params.get("force") != "true":
            fields = sorted(".".join(p) for paths in taken.values() for p in paths)
            holders = sorted(manager for manager, _ in taken)
            raise kmock.KubernetesError(
                status=409,
                reason="Conflict",
                message=f"Apply failed with conflicts: {', '.join(fields)} ({', '.join(holders)})",
            )
        others = {o: without_fields(f, taken.get(o, ())) for o, f in owners.items()}
        result = apply_manifest(live, manifest, previous, others.values())
        result = with_defaults(key[0], result)
        await self._store(key, exists, live, result, {**others, (manager, "Apply"): manifest})

    async def _write(self, key: ObjectKey, request: kmock.Request) -> bool:
        """A plain PATCH of an owned object: kmock's merge, and the writer owns what it
        changed. False leaves it to kmock (a missing object, or one being deleted)."""
        if key not in self.objects or self.objects[key].deleted:
            return False
        before = self.objects[key].raw
        if (before.get("metadata") or {}).get("deletionTimestamp"):
            return False
        after = merge_patch(before, request.data or {})
        writer = _writer(request)
        owners = {o: still_owned(f, after) for o, f in self._owners[key].items() if o != writer}
        written = written_fields(request.data or {}, before, after)
        held = self._owners[key].get(writer, {})
        owners[writer] = only_fields(after, written | owned_paths(held))
        await self._store(key, True, before, after, owners)
        return True

    async def _store(
        self,
        key: ObjectKey,
        exists: bool,
        live: Manifest | None,
        result: dict[str, Any],
        owners: dict[Owner, dict[str, Any]],
    ) -> None:
        owners = {o: f for o, f in owners.items() if owned_paths(f)}
        self._owners[key] = owners
        result.setdefault("metadata", {})["managedFields"] = managed_fields(owners)
        if not exists:
            if key in self.objects:
                self.objects[key].create(result)
            else:
                self.objects[key] = result
            await self._buses[key[0]].put({"type": "ADDED", "object": result})
        elif result != live:  # a real server writes nothing (and tells no watcher) for a no-op
            self.objects[key].history.append(result)
            await self._buses[key[0]].put({"type": "MODIFIED", "object": result})


_resource_versions = itertools.count(2)


def _versioned(append: Any) -> Any:
    """``ObjectHistory.append`` that gives the new version a resourceVersion of its own
    and forgets the versions before the previous one (kmock keeps them all, for tests)."""

    def append_versioned(history: Any, value: Any) -> None:
        append(history, value)
        stored = history[-1]
        if stored is not None:
            raw = stored._ObjectVersion__value  # the stored dict itself, not a copy
            # In place: the watch event kmock sends next shares this metadata dict.
            raw.setdefault("metadata", {})["resourceVersion"] = str(next(_resource_versions))
        del history[:-2]

    return append_versioned


@attrs.define(kw_only=True)
class ForgetfulEmulator(ApplyingEmulator):
    """kmock (taught server-side apply, which the operator's children need) without its
    request log and history. kmock records every request for test assertions and, to
    dispatch each new one, scans the whole log: O(n) per request, O(n^2) per run, which
    would make the emulator, not the operator, what a benchmark or scale test measures.

    And, as a real API server, every write gives an object a new resourceVersion, and a
    JSON patch whose resourceVersion test fails is a 422 (kmock: one version for ever, and
    a 500). kopf knows the watch event of its own patch by its resourceVersion; with one
    version for ever it takes the stale event of a handler's status write for the next
    state, and handles every object's creation twice."""

    _unversioned: Any = attrs.field(default=None, init=False)

    _preconditions: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)

    @staticmethod
    def _precondition(request: Any) -> str | None:
        """The resourceVersion a plain merge patch requires, if it names one."""
        if request.action != kmock.action.UPDATE or request.name is None or is_apply(request):
            return None
        if not isinstance(request.data, dict):
            return None
        wanted = (request.data.get("metadata") or {}).get("resourceVersion")
        return str(wanted) if wanted else None

    def _check_precondition(self, request: Any) -> None:
        """A merge patch naming ``metadata.resourceVersion`` writes only that version, as
        the API server's optimistic concurrency: another is a 409 Conflict (the warm
        pool's claim of a pod relies on it; kmock merges it in)."""
        wanted = self._precondition(request)
        key = (request.resource, request.namespace, request.name)
        if not wanted or key not in self.objects or self.objects[key].deleted:
            return
        live = (self.objects[key].raw.get("metadata") or {}).get("resourceVersion")
        if live and live != wanted:
            raise k8s.KubernetesError(
                status=409,
                reason="Conflict",
                message=f"Operation cannot be fulfilled on {request.name}: the object has "
                "been modified; please apply your changes to the latest version and try again",
            )

    async def __aenter__(self) -> Any:
        # kmock's history class is shared by every emulator in the process: versioned
        # while this one runs, as kmock made it afterwards.
        history = k8s_dicts.ObjectHistory
        self._unversioned = history.append
        history.append = _versioned(history.append)  # type: ignore[method-assign]
        return await super().__aenter__()

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await super().__aexit__(*exc_info)
        finally:
            k8s_dicts.ObjectHistory.append = self._unversioned  # type: ignore[method-assign]

    async def _handle(self, request: Any) -> Any:
        try:
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                # As the API server: a created object has a version (and a uid) at once.
                meta = request.data.setdefault("metadata", {})
                meta["resourceVersion"] = str(next(_resource_versions))
                meta.setdefault("uid", str(uuid.uuid4()))
            if self._precondition(request) is None:
                return await super()._handle(request)
            # Checked and written as one step: of two writes of one version, one wins.
            async with self._preconditions:
                self._check_precondition(request)
                return await super()._handle(request)
        except jsonpatch.JsonPatchTestFailed as failed:
            raise k8s.KubernetesError(status=422, reason="Invalid", message=str(failed)) from None
        finally:
            with contextlib.suppress(ValueError):
                self._requests.remove(request)


def preload_http_functions(
    emulator: kmock.KubernetesEmulator,
    namespace: str,
    count: int,
    *,
    ready_port: int | None = None,
    contested_every: int = 0,
) -> None:
    """``count`` Functions ``fn-00000`` ..., each with an HTTP Trigger on ``/fn/{index}``
    and an EndpointSlice, written straight into kmock's store: creating tens of thousands
    through its API would take minutes (it scans every object per request), and what is
    measured is the listing. Every slice is empty (scaled to zero) except, when
    ``ready_port`` is given, those of fn-00000 and every ``contested_every``-th Function,
    which point at 127.0.0.1:ready_port. Every ``contested_every``-th route also gets a
    newer rival Trigger ``rival-NNNNN`` of the next Function, which must lose."""
    triggers = f"{API_VERSION}/{TRIGGER_PLURAL}"
    functions = f"{API_VERSION}/{FUNCTION_PLURAL}"
    for index in range(count):
        name = f"fn-{index:05d}"
        emulator.objects[functions, namespace, name] = {
            "apiVersion": API_VERSION,
            "kind": "Function",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"handler": "handlers.echo", "code": {"image": "x"}},
        }
        emulator.objects[triggers, namespace, name] = _http_trigger(
            namespace, name, name, "2026-01-01T00:00:00Z", f"/fn/{index}"
        )
        contested = contested_every and index % contested_every == 0
        ready = ready_port is not None and (index == 0 or contested)
        emulator.objects["discovery.k8s.io/v1/endpointslices", namespace, f"{name}-abcde"] = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-abcde",
                "namespace": namespace,
                "labels": {"hanshu.io/function": name, "kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": ready_port or 8080, "protocol": "TCP"}],
            "endpoints": (
                [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}] if ready else []
            ),
        }
        if contested:
            rival = f"rival-{index:05d}"
            emulator.objects[triggers, namespace, rival] = _http_trigger(
                namespace, rival, f"fn-{index + 1:05d}", "2026-06-01T00:00:00Z", f"/fn/{index}"
            )


def _http_trigger(
    namespace: str, name: str, function: str, created: str, path: str
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"functionRef": {"name": function}, "http": {"path": path}},
    }
