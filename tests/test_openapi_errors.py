"""`/openapi.json` names every error each route can raise.

Two nets, one for each way a route's errors could drift from its document:

- Statically (this file): for every route of the app, the catalog errors its
  handler's code can reach, following the functions it calls (through
  closures, module globals and module attributes, into any bot/ module), must
  be among the errors its operation declares, and the document must name each
  declared slug under its status. This covers code paths no test exercises; it
  cannot see through calls on objects (`store.accept_send(...)`), which is why
  services raise their own exceptions and routes translate them.
- At run time (tests/conftest.py): whenever a documented route answers with
  an error it does not declare, the error middleware logs it and the test that
  made the request fails. This covers whatever the static walk cannot follow.
"""

from __future__ import annotations

import ast
import inspect
import json
import logging
import textwrap
import types
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.web.catalog import Error
from bot.web.errors import error_middleware, fail
from bot.web.openapi import TABLES
from bot.web.operations import UNDECLARED_ERROR, ApiRoutes, declared_errors
from tests.send_helpers import DEFAULT
from tests.test_openapi import LEFT_OUT, PAGES


def _errors_in(value: Any) -> set[Error]:
    if isinstance(value, Error):
        return {value}
    if isinstance(value, dict):
        return {e for v in [*value, *value.values()] for e in _errors_in(v)}
    if isinstance(value, frozenset | set | tuple | list):
        return {e for v in value for e in _errors_in(v)}
    return set()


def _resolve(node: ast.expr, names: dict[str, Any]) -> Any:
    """What a name or a dotted name stands for, when a module or class holds it."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, names)
        if isinstance(base, types.ModuleType | type):
            return getattr(base, node.attr, None)
    return None


def _ours(value: Any) -> bool:
    return isinstance(value, types.FunctionType) and value.__module__.startswith(("bot.",
                                                                                 "handlers."))


def reachable_errors(handler: Callable[..., Any]) -> set[Error]:
    """Every catalog error the handler's code, and the code it calls, names."""
    found: set[Error] = set()
    seen: set[Any] = set()
    todo: list[Any] = [handler]
    while todo:
        function = inspect.unwrap(todo.pop())
        if function in seen:
            continue
        seen.add(function)
        names = {**function.__globals__, **inspect.getclosurevars(function).nonlocals}
        for cell_value in inspect.getclosurevars(function).nonlocals.values():
            found |= _errors_in(cell_value)
            if _ours(cell_value):
                todo.append(cell_value)
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Name | ast.Attribute):
                continue
            value = _resolve(node, names)
            found |= _errors_in(value)
            if _ours(value):
                todo.append(value)
    return found


def _documented(operation: dict[str, Any]) -> set[tuple[str, int]]:
    """(slug, status) for each slug an operation's error responses name."""
    return {(slug, int(status)) for status, response in operation["responses"].items()
            if status[0] in "45"
            for slug in response["content"]["application/json"]["schema"].get(
                "properties", {}).get("error", {}).get("enum", [])}


async def test_every_route_documents_every_error_it_can_raise(make_client) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await make_client(DEFAULT)
    doc = await (await client.get("/openapi.json")).json()
    checked = 0
    for route in client.app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        key = (route.method.lower(), resource.canonical)
        if key in LEFT_OUT or resource.canonical.startswith(PAGES):
            continue
        declared = declared_errors(route.handler)
        assert declared is not None, f"{key}: routed without an operation"
        reachable = reachable_errors(route.handler)
        assert reachable <= declared, f"{key} can raise {sorted(reachable - declared)}, " \
            "which its operation does not declare"
        documented = _documented(doc["paths"][resource.canonical][key[0]])
        named = {(e.slug, e.status) for e in declared}
        assert named <= documented, f"{key}: /openapi.json leaves out {named - documented}"
        checked += 1
    assert checked == sum(len(t.operations) for t in TABLES)


async def test_the_template_send_documents_its_slugs(make_client) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await make_client(DEFAULT)
    doc = await (await client.get("/openapi.json")).json()
    operation = doc["paths"]["/v3/whatsapp/single/template/message/{n}"]["post"]
    assert {("unknown_template", 400), ("parameter_count", 400), ("invalid_parameters", 400),
            ("unknown_language", 400), ("invalid_header", 400),
            ("templates_not_supported", 400), ("invalid_number", 471)} <= _documented(operation)


def test_the_walk_finds_an_error_a_helper_raises() -> None:
    """The static net catches a slug raised two calls down, through a closure."""
    def helper() -> None:
        fail(Error.NOT_SENT_YET, "x")

    def make() -> Callable[[], None]:
        inner = helper

        def handler() -> None:
            inner()
        return handler

    helper.__module__ = make.__module__ = "bot.fake"
    handler = make()
    handler.__module__ = "bot.fake"
    assert Error.NOT_SENT_YET in reachable_errors(handler)


async def test_an_undeclared_error_is_reported_at_run_time(
        aiohttp_client: Any, every_error_raised_is_declared: Any) -> None:
    """The run-time net: the answer is unchanged, and the drift is logged (which
    the autouse fixture turns into a failure; taken back here to test it)."""
    routes = ApiRoutes()

    @routes.operation("get", "/drift", summary="s", tag="admin", security="open",
                      ok={"type": "object"}, ok_description="ok", errors={Error.UNKNOWN_NUMBER})
    async def drift(request: web.Request) -> web.Response:
        fail(Error.NOT_SENT_YET, "not declared")

    app = web.Application(middlewares=[error_middleware])
    app.add_routes(routes)
    client = await aiohttp_client(app)
    resp = await client.get("/drift")
    assert resp.status == 409 and (await resp.json())["error"] == "not_sent_yet"
    assert any("not_sent_yet" in m for m in every_error_raised_is_declared.seen)
    every_error_raised_is_declared.seen.clear()


@pytest.mark.parametrize("error", list(Error))
def test_catalog_entries_are_whole(error: Error) -> None:
    assert error.slug and error.summary and 400 <= error.status < 600, error


def test_one_slug_two_statuses_stay_two_members() -> None:
    assert Error.INVALID_NUMBER.slug == Error.INVALID_DESTINATION.slug == "invalid_number"
    assert Error.INVALID_NUMBER != Error.INVALID_DESTINATION
    assert Error.INVALID_DESTINATION not in {Error.INVALID_NUMBER}
    assert UNDECLARED_ERROR and logging.getLogger("wagate.http")


def test_the_document_is_valid_openapi_3_1() -> None:
    """Against the OpenAPI 3.1 schema schemathesis itself loads documents with."""
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    from bot.web.openapi import DOCUMENT

    document = json.loads(json.dumps(DOCUMENT))
    assert [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(document)] == []
