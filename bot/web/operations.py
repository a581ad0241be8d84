"""Each route's OpenAPI operation, declared beside its handler.

A route module makes its table with `ApiRoutes()` and registers each handler
through `routes.operation(method, path, ...)`, saying what it answers (a
frozen dataclass, whose JSON schema is generated from its type hints) and the
catalog errors it can raise (`bot.web.catalog.Error`). `bot.web.openapi` only
assembles these into /openapi.json.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from aiohttp import web

from bot.web.catalog import Error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# In the log line of an error a route raised without declaring it: tests look for it.
UNDECLARED_ERROR = "undeclared error"

# Who may call an operation: the admin's Bearer token, the send API's headers
# (implied by the document's default), the same headers on the account API
# (said explicitly), or no credential at all.
Security = Literal["admin", "send", "account", "open"]

# A timestamp in a response: ISO 8601 in UTC (`bot.web.row_json.iso`).
Time = Annotated[str, {"format": "date-time"}]
MaybeTime = Annotated[str | None, {"format": "date-time"}]


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    method: str
    path: str
    handler: Handler
    id: str
    summary: str
    tag: str
    security: Security
    ok: type | dict[str, Any]  # a response dataclass, or a schema for what has no type
    ok_description: str
    errors: frozenset[Error]
    description: str | None = None
    parameters: tuple[dict[str, Any], ...] = ()
    body: dict[str, Any] | None = None  # the JSON body's schema
    form: bool = False  # the same fields form-encoded too
    body_required: bool = True
    ok_content_type: str = "application/json"
    other_responses: dict[str, Any] = field(default_factory=dict)  # e.g. /readyz's 503


_DECLARED: weakref.WeakKeyDictionary[Handler, frozenset[Error]] = weakref.WeakKeyDictionary()


def declared_errors(handler: object) -> frozenset[Error] | None:
    """The errors the operation of this handler declares; None: not documented."""
    try:
        return _DECLARED.get(handler)  # type: ignore[arg-type]
    except TypeError:  # not weakly referable: no operation of ours
        return None


class ApiRoutes(web.RouteTableDef):
    """A route table whose routes carry their operation."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: list[Operation] = []

    def operation(self, method: str, path: str, *, summary: str, tag: str, security: Security,
                  ok: type | dict[str, Any], ok_description: str, errors: Iterable[Error],
                  id: str | None = None, **more: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.route(method.upper(), path)(handler)
            declared = frozenset(errors)
            self.operations.append(Operation(
                method=method, path=path, handler=handler, id=id or handler.__name__,
                summary=summary, tag=tag, security=security, ok=ok,
                ok_description=ok_description, errors=declared, **more))
            _DECLARED[handler] = declared
            return handler
        return register


# ---- parameters


def query(name: str, description: str, schema: dict[str, Any],
          required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}


def path_param(name: str, description: str,
               schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string"}}


def object_schema(properties: dict[str, Any]) -> dict[str, Any]:
    """A schema written by hand for what has no type: every property always present."""
    return {"type": "object", "required": list(properties), "properties": properties}


def ref(section: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{section}/{name}"}


LIMIT = ref("parameters", "Limit")
INSTANCE = ref("parameters", "Instance")


# ---- responses: typed, their schemas generated


def to_json(value: Any) -> Any:
    """A response dataclass as the JSON it is sent as (shallow where it can be)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def utf8_json(value: Any) -> str:
    """JSON text as a client reads it: "👍" stays itself, not "\\ud83d\\udc4d"."""
    return json.dumps(value, ensure_ascii=False)


def json_response(value: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    """Every JSON answer goes through here, so all of them are encoded alike."""
    return web.json_response(to_json(value), status=status, headers=headers, dumps=utf8_json)


_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean",
                            type(None): "null"}


class Schemas:
    """Schemas of response dataclasses, each written once under components."""

    def __init__(self) -> None:
        self.components: dict[str, dict[str, Any]] = {}
        self._classes: dict[str, type] = {}

    def of(self, tp: Any) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if typing.get_origin(tp) is Annotated:
            tp, *meta = typing.get_args(tp)
            for m in meta:
                extra.update(m)
        return {**self._of(tp), **extra}

    def _of(self, tp: Any) -> dict[str, Any]:
        if tp in _SCALARS:
            return {"type": _SCALARS[tp]}
        if tp is Any or tp is object:
            return {}
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is Literal:
            return {"enum": list(args)}
        if origin in (typing.Union, types.UnionType):
            schemas = [self.of(a) for a in args]
            if all("type" in s and set(s) <= {"type", "format"} for s in schemas):
                merged: dict[str, Any] = {"type": [t for s in schemas for t in (
                    s["type"] if isinstance(s["type"], list) else [s["type"]])]}
                merged.update({k: v for s in schemas for k, v in s.items() if k != "type"})
                return merged
            return {"anyOf": schemas}
        if origin in (list, tuple):
            return {"type": "array", "items": self.of(args[0])}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.of(args[1])}
        if dataclasses.is_dataclass(tp):
            return self.component(tp)
        raise TypeError(f"no JSON schema for {tp!r}")

    def component(self, cls: type) -> dict[str, str]:
        """A reference to the class's schema, written once under its name."""
        name = cls.__name__
        if self._classes.setdefault(name, cls) is not cls:
            raise TypeError(f"two response types are named {name}: rename one")
        if name not in self.components:
            self.components[name] = {}  # (a cycle would find itself here)
            self.components[name] = self.inline(cls)
        return ref("schemas", name)

    def inline(self, cls: type) -> dict[str, Any]:
        """The class's own object schema (every field always present)."""
        hints = typing.get_type_hints(cls, include_extras=True)
        properties = {}
        for f in dataclasses.fields(cls):
            properties[f.name] = self.of(hints[f.name])
        schema = {"type": "object", "required": list(properties), "properties": properties}
        if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
            schema["description"] = " ".join(cls.__doc__.split())
        return schema


def doc(description: str) -> dict[str, str]:
    """A field's description in its generated schema: `Annotated[int, doc("...")]`."""
    return {"description": description}
