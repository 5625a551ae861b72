"""A small stand-in for kube-apiserver's CRD handling, for tests: the structural-schema
rules, OpenAPI v3 validation with defaulting, and CEL x-kubernetes-validations evaluated with
cel-python. It checks what a real apiserver would reject, so a broken CRD or example fails
here rather than at a user's ``kubectl apply``."""

from __future__ import annotations

import ast
import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import celpy
import yaml

ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = ROOT / "crds"
_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def load_crds() -> dict[str, dict[str, Any]]:
    """kind -> CRD document."""
    crds = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crds[crd["spec"]["names"]["kind"]] = crd
    return crds


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return version["schema"]["openAPIV3Schema"]


def structural_problems(node: dict[str, Any], path: str = "", *, top: bool = True) -> list[str]:
    """Kubernetes' structural-schema rules, plus ours: every field has a description."""
    problems: list[str] = []
    here = path or "<root>"
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "type" not in node and not int_or_string and not preserve:
        problems.append(f"{here}: no type")
    if "anyOf" in node and not int_or_string:
        problems.append(f"{here}: anyOf is only allowed for x-kubernetes-int-or-string")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{here}: properties and additionalProperties are exclusive")
    if node.get("type") == "array" and "items" not in node:
        problems.append(f"{here}: an array needs items")
    for forbidden in ("$ref", "uniqueItems", "x-kubernetes-embedded-resource"):
        if forbidden in node:
            problems.append(f"{here}: {forbidden} is not allowed here")
    if node.get("x-kubernetes-list-type") == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        required = set(node.get("items", {}).get("required") or [])
        if not keys or not set(keys) <= required:
            problems.append(f"{here}: list-type map keys must be required item fields")
    for name, child in (node.get("properties") or {}).items():
        child_path = f"{path}.{name}" if path else name
        if top and name == "metadata":
            problems += _root_metadata_problems(child)
            continue
        if top and name in ("apiVersion", "kind"):
            continue
        if not child.get("description"):
            problems.append(f"{child_path}: no description (kubectl explain shows it)")
        problems += structural_problems(child, child_path, top=False)
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}.*", top=False)
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[*]", top=False)
    if "default" in node:
        problems += [
            f"{here}: default is invalid: {p}"
            for p in validate(copy.deepcopy(node["default"]), node, path)
        ]
    return problems


def _root_metadata_problems(node: dict[str, Any]) -> list[str]:
    """The apiserver accepts at the root only `metadata: {type: object}`, optionally with
    restrictions on metadata.name and metadata.generateName (declaring both, as strings, also
    tells its CEL cost estimator how long a name a rule may read)."""
    problems = []
    if set(node) - {"type", "properties"} or node.get("type") != "object":
        problems.append("metadata: only 'type: object' and properties may be given at the root")
    properties = node.get("properties") or {}
    for name, child in properties.items():
        if name not in ("name", "generateName"):
            problems.append(f"metadata.{name}: only name and generateName may be restricted")
        elif child.get("type") != "string":
            problems.append(f"metadata.{name}: must be of type string")
    if properties and set(properties) != {"name", "generateName"}:
        problems.append(
            "metadata: declare both name and generateName, or the apiserver's CEL cost "
            "estimator ignores the declaration"
        )
    return problems


def apply_defaults(value: Any, node: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        for name, child in (node.get("properties") or {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(value[name], child)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key in list(value):
                value[key] = apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        return [apply_defaults(item, node["items"]) for item in value]
    return value


_cel_env = celpy.Environment()


def _cel(rule: str, value: Any) -> bool:
    program = _cel_env.program(_cel_env.compile(rule))
    return bool(program.evaluate({"self": celpy.json_to_cel(value)}))


def validate(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """What the apiserver would answer, as 'field: problem' lines (after defaulting)."""
    here = path or "<root>"
    errors: list[str] = []
    kind = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            return [f"{here}: must be an integer or a string"]
    elif kind is not None:
        expected = _TYPES[kind]
        if not isinstance(value, expected) or (
            kind in ("integer", "number") and isinstance(value, bool)
        ):
            return [f"{here}: must be of type {kind}, got {type(value).__name__}"]
    if isinstance(value, str):
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.append(f"{here}: {value!r} does not match {node['pattern']}")
        if "enum" in node and value not in node["enum"]:
            errors.append(f"{here}: {value!r} is not one of {node['enum']}")
        if len(value) > node.get("maxLength", 10**9):
            errors.append(f"{here}: longer than {node['maxLength']}")
        if len(value) < node.get("minLength", 0):
            errors.append(f"{here}: shorter than {node['minLength']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in node:
            low = node["minimum"]
            if value < low or (node.get("exclusiveMinimum") and value == low):
                errors.append(f"{here}: {value} is below the minimum {low}")
        if "maximum" in node and value > node["maximum"]:
            errors.append(f"{here}: {value} is above the maximum {node['maximum']}")
    if isinstance(value, dict):
        for name in node.get("required") or []:
            if name not in value:
                errors.append(f"{path + '.' if path else ''}{name}: Required value")
        properties = node.get("properties") or {}
        extra = node.get("additionalProperties")
        if len(value) > node.get("maxProperties", 10**9):
            errors.append(f"{here}: more than {node['maxProperties']} properties")
        for name, item in value.items():
            child_path = f"{path}.{name}" if path else name
            if name in properties:
                if path == "" and name == "metadata":
                    # Only name and generateName may be declared; the rest is ObjectMeta's.
                    declared = properties[name].get("properties") or {}
                    for key, restriction in declared.items():
                        if isinstance(item, dict) and key in item:
                            errors += validate(item[key], restriction, f"metadata.{key}")
                    continue
                errors += validate(item, properties[name], child_path)
            elif isinstance(extra, dict):
                errors += validate(item, extra, child_path)
            elif not node.get("x-kubernetes-preserve-unknown-fields") and (
                properties or extra is False
            ):
                errors.append(f"{child_path}: unknown field (the apiserver would prune it)")
    if isinstance(value, list) and len(value) > node.get("maxItems", 10**9):
        errors.append(f"{here}: more than {node['maxItems']} items")
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(value):
            errors += validate(item, node["items"], f"{path}[{index}]")
    if not errors:
        for validation in node.get("x-kubernetes-validations") or []:
            if "oldSelf" in validation["rule"]:
                continue  # a transition rule: the apiserver runs it on updates only
            if not _cel(validation["rule"], value):
                errors.append(f"{here}: {validation['message']}")
    return errors


def admit(
    obj: dict[str, Any], crds: dict[str, dict[str, Any]] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Default and validate ``obj`` like the apiserver: (defaulted object, errors)."""
    crds = crds or load_crds()
    schema = schema_of(crds[obj["kind"]])
    defaulted = apply_defaults(copy.deepcopy(obj), schema)
    return defaulted, validate(defaulted, schema)


# --- What kube-apiserver estimates a CEL rule costs before it accepts a CRD ---------------
#
# A real apiserver refuses a CRD whose rules' *estimated* worst-case cost is over budget
# ("estimated rule cost exceeds budget by factor of ..."); cel-python evaluates rules but
# estimates nothing, so this replays the estimator for the subset of CEL our rules use.
# Sources (kubernetes/kubernetes and google/cel-go):
# - apiextensions-apiserver pkg/apis/apiextensions/validation/validation.go:
#   StaticEstimatedCostLimit = 10,000,000 per rule, compared with getExpressionCost =
#   MaxCost x MaxCardinality (how often the rule can run: the product of the maxItems /
#   maxProperties of the lists and maps above it); StaticEstimatedCRDCostLimit =
#   100,000,000 for the sum over a CRD version.
# - apiserver pkg/apis/cel/config.go: PerCallLimit = 1,000,000 (the runtime limit of one
#   evaluation), RuntimeCELCostBudget = 10,000,000 (of all rules on one object).
# - apiserver pkg/cel/common/schemas.go (SchemaDeclType): a string with maxLength n counts
#   as 4n (bytes per code point); a string without one as DefaultMaxRequestSizeBytes - 2
#   (3 MiB); a list without maxItems as (3 MiB - 2) / (min item size + 1); a map without
#   maxProperties as (3 MiB - 2) / (min value size + 6). At a resource's root,
#   WithTypeAndObjectMeta declares metadata.name and generateName as unbounded strings
#   unless the schema declares both.
# - cel-go checker/cost.go: identifier and field select 1, has() 1, constants 0, a list
#   literal 10 + its items, an O(1) call 1 + its arguments, && / || / ?: their operands;
#   s.matches(re) ceil((size(s) + 1) x 0.1) x ceil(size(re) x 0.25) (string traversal x
#   regex length factor); startsWith / endsWith ceil(size(arg) x 0.1); string == and <
#   ceil(min size x 0.1); x in list size(list); a comprehension (all, exists, exists_one,
#   filter, map) range size x (its loop condition + step), with the macro expansions' own
#   accumulator costs.
# The model reproduces issue 8's refusal exactly: the old cron rule on a cron without
# maxLength estimates 12,582,921, and the apiserver answered "factor of 1.258292x".

MAX_REQUEST_BYTES = 3 * 1024 * 1024
STATIC_ESTIMATED_COST_LIMIT = 10_000_000
STATIC_ESTIMATED_CRD_COST_LIMIT = 100_000_000
PER_CALL_LIMIT = 1_000_000
# Map keys cannot declare maxLength in a structural schema; the apiserver's estimator counts
# them as short. We assume a ConfigMap key's limit (253 characters, 4 bytes each) instead.
MAP_KEY_BYTES = 253 * 4

_STRING_TRAVERSAL = 0.1
_REGEX_LENGTH = 0.25
_LIST_CREATE = 10
_MAP_CREATE = 30
_MACROS = {"all", "exists", "exists_one", "filter", "map"}
_BOUND_OF = {"string": "maxLength", "list": "maxItems", "map": "maxProperties"}


class UnmodelledCEL(Exception):
    """A rule uses CEL the cost model does not know: extend the model before using it."""


@dataclass(frozen=True)
class CelValue:
    """What the estimator knows of a value: its kind, its worst-case size (characters x 4
    for strings, items for lists, entries for maps), and the schema it comes from."""

    kind: str  # string, list, map, object, scalar
    size: int = 1
    path: str = ""
    schema: dict[str, Any] | None = None
    elem: CelValue | None = None  # list items; map keys
    values: CelValue | None = None  # map values


@dataclass
class RuleCost:
    """One x-kubernetes-validations rule, as the apiserver would cost it."""

    kind: str
    path: str
    index: int
    rule: str
    cost: int  # the expression's estimated MaxCost (one evaluation)
    cardinality: int  # how many times it may run per object
    unbounded: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.cost * self.cardinality

    @property
    def where(self) -> str:
        return f"{self.kind} {self.path or '<root>'} rule {self.index}"


def _min_json_size(node: dict[str, Any]) -> int:
    """SchemaDeclType's MinSerializedSize: the shortest JSON a value of ``node`` can be."""
    kind = node.get("type")
    if node.get("x-kubernetes-int-or-string") or kind in ("integer", "number"):
        return 1
    if kind == "string":
        return 2
    if kind == "boolean":
        return 4
    if kind == "object" and "properties" in node:
        size = 2
        required = set(node.get("required") or [])
        for name, child in node["properties"].items():
            if name in required and "default" not in child:
                size += len(name) + _min_json_size(child) + 4
        return size
    return 2


def _max_size(node: dict[str, Any]) -> int:
    kind = node.get("type")
    if kind == "string" or node.get("x-kubernetes-int-or-string"):
        if "maxLength" in node:
            return int(node["maxLength"]) * 4
        return MAX_REQUEST_BYTES - 2
    if kind == "array":
        if "maxItems" in node:
            return int(node["maxItems"])
        return (MAX_REQUEST_BYTES - 2) // (_min_json_size(node.get("items") or {}) + 1)
    if isinstance(node.get("additionalProperties"), dict):
        if "maxProperties" in node:
            return int(node["maxProperties"])
        return (MAX_REQUEST_BYTES - 2) // (_min_json_size(node["additionalProperties"]) + 6)
    return 1


def _with_object_meta(node: dict[str, Any]) -> dict[str, Any]:
    """WithTypeAndObjectMeta: what a rule at a resource's root sees as metadata."""
    properties = node.get("properties") or {}
    declared = (properties.get("metadata") or {}).get("properties") or {}
    if all(declared.get(n, {}).get("type") == "string" for n in ("name", "generateName")):
        return node
    metadata = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}},
    }
    return {**node, "properties": {**properties, "metadata": metadata}}


def schema_value(node: dict[str, Any], path: str, *, root: bool = False) -> CelValue:
    """The value a rule sees for data described by ``node``."""
    if root:
        node = _with_object_meta(node)
    kind = node.get("type")
    if kind == "string" or node.get("x-kubernetes-int-or-string"):
        return CelValue("string", _max_size(node), path, node)
    if kind == "array":
        items = schema_value(node.get("items") or {}, f"{path}[*]")
        return CelValue("list", _max_size(node), path, node, elem=items)
    if isinstance(node.get("additionalProperties"), dict):
        key = CelValue("string", MAP_KEY_BYTES, f"{path} keys")
        values = schema_value(node["additionalProperties"], f"{path}.*")
        return CelValue("map", _max_size(node), path, node, elem=key, values=values)
    if kind == "object":
        return CelValue("object", 1, path, node)
    return CelValue("scalar", 1, path, node)


def _children(tree: Any) -> list[Any]:
    return [c for c in tree.children if c is not None]


def _ceil(value: float) -> int:
    return math.ceil(value)


class _Estimator:
    """Walks a cel-python parse tree the way cel-go's checker.Cost walks a checked AST."""

    def __init__(self, this: CelValue) -> None:
        # oldSelf (a transition rule's previous value) has the same schema as self.
        self.scopes: dict[str, list[CelValue]] = {"self": [this], "oldSelf": [this]}
        self.unbounded: list[str] = []

    def read(self, value: CelValue) -> CelValue:
        """Note a value the rule reads: the estimate is only finite if it is bounded."""
        bound = _BOUND_OF.get(value.kind)
        if bound and value.schema is not None and bound not in value.schema:
            note = f"{value.path or '<root>'} ({value.kind}) declares no {bound}"
            if note not in self.unbounded:
                self.unbounded.append(note)
        return value

    def cost(self, tree: Any) -> tuple[int, CelValue]:
        method = getattr(self, f"_{tree.data}", None)
        if method is None:
            raise UnmodelledCEL(f"no cost model for CEL syntax {tree.data!r}")
        result: tuple[int, CelValue] = method(tree)
        return result

    def _single(self, tree: Any) -> tuple[int, CelValue]:
        (child,) = _children(tree)
        return self.cost(child)

    _member = _primary = _paren_expr = _single

    def _expr(self, tree: Any) -> tuple[int, CelValue]:
        parts = _children(tree)
        if len(parts) == 1:
            return self.cost(parts[0])
        condition, when_true, when_false = (self.cost(p) for p in parts)
        size = max(when_true[1].size, when_false[1].size)
        value = when_true[1] if when_true[1].size >= when_false[1].size else when_false[1]
        return condition[0] + max(when_true[0], when_false[0]), CelValue(value.kind, size)

    def _logical(self, tree: Any) -> tuple[int, CelValue]:
        parts = _children(tree)
        if len(parts) == 1:
            return self.cost(parts[0])
        return self.cost(parts[0])[0] + self.cost(parts[1])[0], CelValue("scalar")

    _conditionalor = _conditionaland = _logical

    def _relation(self, tree: Any) -> tuple[int, CelValue]:
        parts = _children(tree)
        if len(parts) == 1:
            return self.cost(parts[0])
        operator, right_tree = parts
        left_cost, left = self.cost(_children(operator)[0])
        right_cost, right = self.cost(right_tree)
        args = left_cost + right_cost
        if operator.data == "relation_in":
            if right.kind == "list":
                self.read(right)
                if right.elem is not None:
                    self.read(right.elem)
                return args + right.size, CelValue("scalar")
            return args + 1, CelValue("scalar")
        comparable = ("string", "list", "map")
        if operator.data in ("relation_eq", "relation_ne") or (
            left.kind == "string" and right.kind == "string"
        ):
            sizes = [v.size if v.kind in comparable else 1 for v in (left, right)]
            return args + _ceil(min(sizes) * _STRING_TRAVERSAL), CelValue("scalar")
        return args + 1, CelValue("scalar")

    def _addition(self, tree: Any) -> tuple[int, CelValue]:
        parts = _children(tree)
        if len(parts) == 1:
            return self.cost(parts[0])
        operator, right_tree = parts
        left_cost, left = self.cost(_children(operator)[0])
        right_cost, right = self.cost(right_tree)
        size = left.size + right.size
        if operator.data == "addition_add" and left.kind == "string":
            return left_cost + right_cost + _ceil(size * _STRING_TRAVERSAL), CelValue(
                "string", size
            )
        if operator.data == "addition_add" and left.kind == "list":
            return left_cost + right_cost + 1, CelValue("list", size, elem=left.elem)
        return left_cost + right_cost + 1, CelValue("scalar")

    def _multiplication(self, tree: Any) -> tuple[int, CelValue]:
        parts = _children(tree)
        if len(parts) == 1:
            return self.cost(parts[0])
        operator, right_tree = parts
        left_cost = self.cost(_children(operator)[0])[0]
        return left_cost + self.cost(right_tree)[0] + 1, CelValue("scalar")

    def _unary(self, tree: Any) -> tuple[int, CelValue]:
        parts = _children(tree)
        if len(parts) == 1:
            return self.cost(parts[0])
        return self.cost(parts[1])[0] + 1, CelValue("scalar")

    def _literal(self, tree: Any) -> tuple[int, CelValue]:
        (token,) = tree.children
        if token.type in ("STRING_LIT", "MLSTRING_LIT"):
            text = ast.literal_eval(str(token.value))
            return 0, CelValue("string", len(text))
        return 0, CelValue("scalar")

    def _list_lit(self, tree: Any) -> tuple[int, CelValue]:
        items = [self.cost(e) for e in _exprs(tree)]
        elem = max((v for _, v in items), key=lambda v: v.size, default=CelValue("scalar"))
        return sum(c for c, _ in items) + _LIST_CREATE, CelValue("list", len(items), elem=elem)

    def _map_lit(self, tree: Any) -> tuple[int, CelValue]:
        parts = [self.cost(e) for e in _children(_children(tree)[0])] if _children(tree) else []
        return sum(c for c, _ in parts) + _MAP_CREATE, CelValue("map", len(parts) // 2)

    def _ident(self, tree: Any) -> tuple[int, CelValue]:
        name = str(tree.children[0])
        if not self.scopes.get(name):
            raise UnmodelledCEL(f"unknown identifier {name!r}")
        return 1, self.read(self.scopes[name][-1])

    def _select(self, operand: CelValue, name: str) -> CelValue:
        if operand.kind == "map" and operand.values is not None:
            return operand.values
        node = operand.schema or {}
        child = (node.get("properties") or {}).get(name)
        if child is None:
            raise UnmodelledCEL(f"{operand.path or '<root>'} has no field {name!r}")
        path = f"{operand.path}.{name}" if operand.path else name
        return schema_value(child, path)

    def _member_dot(self, tree: Any) -> tuple[int, CelValue]:
        operand_tree, name = tree.children
        operand_cost, operand = self.cost(operand_tree)
        return operand_cost + 1, self.read(self._select(operand, str(name)))

    def _member_index(self, tree: Any) -> tuple[int, CelValue]:
        operand_tree, index_tree = tree.children
        operand_cost, operand = self.cost(operand_tree)
        index_cost, _ = self.cost(index_tree)
        if operand.kind == "list" and operand.elem is not None:
            value = operand.elem
        elif operand.kind == "map" and operand.values is not None:
            value = operand.values
        else:
            raise UnmodelledCEL(f"cannot index {operand.kind} {operand.path}")
        return operand_cost + index_cost + 1, self.read(value)

    def _has(self, argument: Any) -> tuple[int, CelValue]:
        # has(x.f) tests presence: it costs 1 and reads neither x.f nor its size.
        select = argument
        while select.data != "member_dot":
            children = _children(select)
            if len(children) != 1:
                raise UnmodelledCEL("has() takes a field selection")
            select = children[0]
        operand_cost, operand = self.cost(select.children[0])
        self._select(operand, str(select.children[1]))  # the field must exist
        return operand_cost + 1, CelValue("scalar")

    def _ident_arg(self, tree: Any) -> tuple[int, CelValue]:
        name = str(tree.children[0])
        args = _exprs(tree)
        if name == "has" and len(args) == 1:
            return self._has(args[0])
        costs = [self.cost(a) for a in args]
        if name in ("size", "int", "uint", "double", "bool", "type"):
            return sum(c for c, _ in costs) + 1, CelValue("scalar")
        raise UnmodelledCEL(f"no cost model for {name}()")

    def _member_dot_arg(self, tree: Any) -> tuple[int, CelValue]:
        target_tree, name_token = tree.children[:2]
        name = str(name_token)
        args = _exprs(tree)
        target_cost, target = self.cost(target_tree)
        if name in _MACROS:
            return self._comprehension(name, target_cost, target, args)
        costs = [self.cost(a) for a in args]
        cost = target_cost + sum(c for c, _ in costs)
        sizes = [v.size for _, v in costs]
        if name == "size" and not args:
            return cost + 1, CelValue("scalar")
        if name == "matches" and len(args) == 1:
            traversal = _ceil((target.size + 1) * _STRING_TRAVERSAL)
            return cost + traversal * _ceil(sizes[0] * _REGEX_LENGTH), CelValue("scalar")
        if name in ("startsWith", "endsWith") and len(args) == 1:
            return cost + _ceil(sizes[0] * _STRING_TRAVERSAL), CelValue("scalar")
        if name == "contains" and len(args) == 1:
            product = _ceil(target.size * _STRING_TRAVERSAL) * _ceil(sizes[0] * _STRING_TRAVERSAL)
            return cost + product, CelValue("scalar")
        if name in ("lowerAscii", "upperAscii", "trim") and not args:
            return cost + _ceil(target.size * _STRING_TRAVERSAL), CelValue("string", target.size)
        raise UnmodelledCEL(f"no cost model for .{name}()")

    def _comprehension(
        self, macro: str, range_cost: int, over: CelValue, args: list[Any]
    ) -> tuple[int, CelValue]:
        if len(args) != 2 or over.kind not in ("list", "map") or over.elem is None:
            raise UnmodelledCEL(f"no cost model for {macro}() here")
        variable = str(_children(_unwrap(args[0]))[0])
        item = over.elem if over.kind == "map" else self.read(over.elem)
        self.scopes.setdefault(variable, []).append(item)
        try:
            body_cost, body = self.cost(args[1])
        finally:
            self.scopes[variable].pop()
        count = over.size
        # The expansions' accumulator init, result, and per-iteration condition + step.
        if macro == "all":  # true; @not_strictly_false(acc); acc && p; acc
            return range_cost + 1 + count * (3 + body_cost), CelValue("scalar")
        if macro == "exists":  # false; @not_strictly_false(!acc); acc || p; acc
            return range_cost + 1 + count * (4 + body_cost), CelValue("scalar")
        if macro == "exists_one":  # 0; true; p ? acc + 1 : acc; acc == 1
            return range_cost + 2 + count * (2 + body_cost), CelValue("scalar")
        if macro == "filter":  # []; true; p ? acc + [x] : acc; acc
            result = CelValue("list", count, elem=item)
            return range_cost + _LIST_CREATE + 1 + count * (13 + body_cost), result
        # map: []; true; acc + [f]; acc
        result = CelValue("list", count, elem=body)
        return range_cost + _LIST_CREATE + 1 + count * (12 + body_cost), result


def _exprs(tree: Any) -> list[Any]:
    lists = [c for c in _children(tree) if getattr(c, "data", None) == "exprlist"]
    return _children(lists[0]) if lists else []


def _unwrap(tree: Any) -> Any:
    while getattr(tree, "data", None) != "ident":
        children = _children(tree)
        if len(children) != 1:
            raise UnmodelledCEL("a macro's first argument must be a variable name")
        tree = children[0]
    return tree


def estimate_rule(rule: str, node: dict[str, Any], path: str = "") -> tuple[int, list[str]]:
    """(estimated MaxCost, values read without a bound) of ``rule`` on schema ``node``."""
    estimator = _Estimator(schema_value(node, path, root=path == ""))
    cost, _ = estimator.cost(_cel_env.compile(rule))
    return cost, estimator.unbounded


def rule_costs(crd: dict[str, Any]) -> list[RuleCost]:
    """Every rule of ``crd`` with its estimated cost and how often it can run."""
    kind = crd["spec"]["names"]["kind"]
    found: list[RuleCost] = []

    def walk(node: dict[str, Any], path: str, cardinality: int, unbounded: list[str]) -> None:
        for index, validation in enumerate(node.get("x-kubernetes-validations") or []):
            cost, reads = estimate_rule(validation["rule"], node, path)
            found.append(
                RuleCost(
                    kind, path, index, validation["rule"], cost, cardinality, unbounded + reads
                )
            )
        for name, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{name}" if path else name, cardinality, unbounded)
        for key, suffix, bound in (
            ("items", "[*]", "maxItems"),
            ("additionalProperties", ".*", "maxProperties"),
        ):
            child = node.get(key)
            if isinstance(child, dict):
                missing = [] if bound in node else [f"{path} declares no {bound} (cardinality)"]
                walk(child, path + suffix, cardinality * _max_size(node), unbounded + missing)

    walk(schema_of(crd), "", 1, [])
    return found


def cost_report(costs: list[RuleCost]) -> str:
    """A table of the rules' estimates against the apiserver's limits."""
    lines = [
        f"{'rule':<44} {'cost':>12} {'x runs':>7} {'total':>12} {'of 10M':>8}",
    ]
    for cost in sorted(costs, key=lambda c: -c.total):
        share = cost.total / STATIC_ESTIMATED_COST_LIMIT
        lines.append(
            f"{cost.where:<44} {cost.cost:>12,} {cost.cardinality:>7,} {cost.total:>12,} "
            f"{share:>8.2%}"
        )
        lines += [f"    unbounded: {note}" for note in cost.unbounded]
    return "\n".join(lines)


if __name__ == "__main__":
    # python -m tests.crd_schema [crd.yaml ...]: print what the apiserver would estimate.
    import sys

    paths = [Path(a) for a in sys.argv[1:]] or sorted(CRD_DIR.glob("*.yaml"))
    for crd_path in paths:
        costs = rule_costs(yaml.safe_load(crd_path.read_text()))
        total = sum(c.total for c in costs)
        print(f"{crd_path}: total {total:,} of {STATIC_ESTIMATED_CRD_COST_LIMIT:,}")
        print(cost_report(costs))
