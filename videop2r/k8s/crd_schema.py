"""Validate a custom resource against its CRD's structural `openAPIV3Schema`, as the API server does.

What the API server checks and this module checks too: types (with `x-kubernetes-int-or-string`
and `nullable`), unknown fields (pruned by the server, an error here unless the node has
`x-kubernetes-preserve-unknown-fields`; `x-kubernetes-embedded-resource` objects keep
apiVersion/kind/metadata), `required`, `enum`, `pattern`, length/size/range bounds, int32/int64
formats, `anyOf`, list uniqueness (`x-kubernetes-list-type` set/map with its map keys), the
root `metadata` as ObjectMeta, and the CEL `x-kubernetes-validations` rules built from `has()`,
`!`, `&&`, `||` and `self in [...]` (transition rules that compare with `oldSelf` only apply to
updates and are skipped). Stricter than the server in one place: a null where the schema does
not say `nullable` is reported (the server would silently drop it; in a manifest it is a bug).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_OBJECT_META_FIELDS = {
    "name", "generateName", "namespace", "labels", "annotations", "finalizers", "ownerReferences",
    "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds", "managedFields", "selfLink",
}
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Violation:
    """One way an object breaks its schema; `path` is a JSON-path-like `.spec.a[0].b`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


@dataclass(frozen=True)
class CustomResourceSchema:
    group: str
    version: str
    kind: str
    schema: dict[str, Any]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def load_crd(path: str | Path) -> list[CustomResourceSchema]:
    """Every served version of the CustomResourceDefinition(s) in a YAML file."""
    found = []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: CRDs are tens of thousands of lines
    for doc in yaml.load_all(Path(path).read_text(), Loader=loader):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for version in spec["versions"]:
            if version.get("served", True):
                found.append(CustomResourceSchema(spec["group"], version["name"], spec["names"]["kind"],
                                                  version["schema"]["openAPIV3Schema"]))
    return found


def validate_custom_resource(obj: dict[str, Any], schemas: list[CustomResourceSchema]) -> list[Violation]:
    """Violations of `obj` against the schema of its apiVersion/kind; unknown kinds are a violation."""
    if not isinstance(obj, dict):
        return [Violation("", "a custom resource must be a mapping")]
    for candidate in schemas:
        if candidate.api_version == obj.get("apiVersion") and candidate.kind == obj.get("kind"):
            violations = validate_value(candidate.schema, obj, "", root=True)
            violations += _validate_object_meta(obj.get("metadata"))
            return violations
    return [Violation("", f"no CRD schema for {obj.get('apiVersion')} {obj.get('kind')}")]


def validate_value(schema: dict[str, Any], value: Any, path: str = "", root: bool = False) -> list[Violation]:
    """Violations of `value` against one structural schema node (recursively)."""
    if value is None:
        if schema.get("nullable"):
            return []
        return [Violation(path, "null is not allowed here (the API server drops it)")]
    errors = _check_type(schema, value, path)
    if errors:
        return errors
    errors += _check_constraints(schema, value, path)
    if isinstance(value, dict):
        errors += _check_object(schema, value, path, root)
    elif isinstance(value, list):
        errors += _check_array(schema, value, path)
    for rule in schema.get("x-kubernetes-validations", ()):
        errors += _check_cel(rule, value, path)
    return errors


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_type(schema: dict[str, Any], value: Any, path: str) -> list[Violation]:
    actual = _type_name(value)
    if schema.get("x-kubernetes-int-or-string"):
        ok = actual in ("integer", "string")
        return [] if ok else [Violation(path, f"expected integer or string, got {actual}")]
    expected = schema.get("type")
    if expected is None:
        return []
    ok = actual == expected or (expected == "number" and actual == "integer")
    return [] if ok else [Violation(path, f"expected {expected}, got {actual} {value!r:.60}")]


def _check_constraints(schema: dict[str, Any], value: Any, path: str) -> list[Violation]:
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(Violation(path, f"{value!r} is not one of {schema['enum']}"))
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(Violation(path, f"{value!r} does not match {schema['pattern']!r}"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(Violation(path, f"longer than {schema['maxLength']} characters"))
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(Violation(path, f"shorter than {schema['minLength']} characters"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(Violation(path, f"{value} is below the minimum {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(Violation(path, f"{value} is above the maximum {schema['maximum']}"))
        bounds = _INT_RANGES.get(schema.get("format", ""))
        if bounds and isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
            errors.append(Violation(path, f"{value} does not fit {schema['format']}"))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(Violation(path, f"fewer than {schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(Violation(path, f"more than {schema['maxItems']} items"))
    if "anyOf" in schema and not schema.get("x-kubernetes-int-or-string"):
        if all(validate_value(branch, value, path) for branch in schema["anyOf"]):
            errors.append(Violation(path, "matches none of the anyOf alternatives"))
    return errors


def _check_object(schema: dict[str, Any], value: dict[str, Any], path: str, root: bool) -> list[Violation]:
    errors = [Violation(f"{path}.{key}", "required field is missing")
              for key in schema.get("required", ()) if key not in value]
    properties = schema.get("properties", {})
    additional = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    embedded = schema.get("x-kubernetes-embedded-resource", False)
    for key, item in value.items():
        child = f"{path}.{key}"
        if key in properties:
            if root and key == "metadata":
                continue  # ObjectMeta: checked by _validate_object_meta
            errors += validate_value(properties[key], item, child)
        elif isinstance(additional, dict):
            errors += validate_value(additional, item, child)
        elif additional is True or preserve:
            continue
        elif embedded and key in ("apiVersion", "kind", "metadata"):
            continue
        else:
            errors.append(Violation(child, "unknown field (the API server would prune it)"))
    return errors


def _check_array(schema: dict[str, Any], value: list[Any], path: str) -> list[Violation]:
    errors = []
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            errors += validate_value(items, item, f"{path}[{index}]")
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        seen = []
        for index, item in enumerate(value):
            if item in seen:
                errors.append(Violation(f"{path}[{index}]", f"duplicate item {item!r} in a set"))
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen_keys: dict[tuple, int] = {}
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key = tuple(item.get(name) for name in keys)
            if key in seen_keys:
                errors.append(Violation(f"{path}[{index}]",
                                        f"duplicate {dict(zip(keys, key))} (also at [{seen_keys[key]}])"))
            seen_keys[key] = index
    return errors


def _validate_object_meta(meta: Any) -> list[Violation]:
    if meta is None:
        return [Violation(".metadata", "required field is missing")]
    if not isinstance(meta, dict):
        return [Violation(".metadata", "expected object")]
    errors = [Violation(f".metadata.{key}", "unknown field of ObjectMeta") for key in meta
              if key not in _OBJECT_META_FIELDS]
    if "name" not in meta and "generateName" not in meta:
        errors.append(Violation(".metadata.name", "name or generateName is required"))
    for key in ("name", "namespace"):
        if key in meta and not (isinstance(meta[key], str) and _DNS1123_SUBDOMAIN.match(meta[key])):
            errors.append(Violation(f".metadata.{key}", f"{meta[key]!r} is not a DNS-1123 name"))
    for key in ("labels", "annotations"):
        mapping = meta.get(key) or {}
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            errors.append(Violation(f".metadata.{key}", "must map strings to strings"))
    return errors


# -- the CEL subset of x-kubernetes-validations: has(self.a.b), !, &&, ||, ( ), self in [...]

_CEL_TOKEN = re.compile(r"\s*(has\(self(?:\.\w+)+\)|self\s+in\s+\[[^\]]*\]|&&|\|\||!|\(|\))")


def _check_cel(rule: dict[str, Any], value: Any, path: str) -> list[Violation]:
    expression = rule.get("rule", "")
    if "oldSelf" in expression:
        return []  # transition rule: only evaluated on update
    try:
        holds = _CelSubset(expression, value).evaluate()
    except ValueError as exc:
        return [Violation(path, f"cannot evaluate CEL rule {expression!r}: {exc}")]
    return [] if holds else [Violation(path, rule.get("message") or f"violates {expression!r}")]


class _CelSubset:
    """Recursive-descent evaluator: or := and ('||' and)*; and := not ('&&' not)*; not := '!'* atom."""

    def __init__(self, expression: str, value: Any):
        self.value = value
        self.tokens: list[str] = []
        position = 0
        while position < len(expression):
            match = _CEL_TOKEN.match(expression, position)
            if not match:
                if expression[position:].strip():
                    raise ValueError(f"unsupported syntax at {expression[position:]!r}")
                break
            self.tokens.append(match.group(1))
            position = match.end()
        self.index = 0

    def evaluate(self) -> bool:
        result = self._or()
        if self.index != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.index]!r}")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise ValueError("unexpected end of rule")
        self.index += 1
        return token

    def _or(self) -> bool:
        result = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            result = result or right
        return result

    def _and(self) -> bool:
        result = self._not()
        while self._peek() == "&&":
            self._take()
            right = self._not()
            result = result and right
        return result

    def _not(self) -> bool:
        if self._peek() == "!":
            self._take()
            return not self._not()
        return self._atom()

    def _atom(self) -> bool:
        token = self._take()
        if token == "(":
            result = self._or()
            if self._take() != ")":
                raise ValueError("missing ')'")
            return result
        if token.startswith("has("):
            node: Any = self.value
            for field in token[len("has(self."):-1].split("."):
                if not isinstance(node, dict) or field not in node:
                    return False
                node = node[field]
            return True
        if token.startswith("self"):
            options = yaml.safe_load(token.split("in", 1)[1].strip())
            return self.value in options
        raise ValueError(f"unexpected {token!r}")
