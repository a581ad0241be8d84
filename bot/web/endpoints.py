"""Webhook endpoints managed at runtime, by the subscriber itself
(`/v3/account/webhooks/...`, its send-API headers) or by the admin for any
subscriber that may have them (`/admin/subscribers/{id}/webhooks/{key}...`). The
work is bot/services/endpoints.py's; `GET /v3/account/webhooks` and the test
event to every endpoint stay in bot/web/account.py.

POST   .../webhooks                   a new endpoint; its signing secret (or token), shown once
GET    .../webhooks/{id}              one endpoint (the file's too), with its health
PATCH  .../webhooks/{id}              url, format, events, enabled, description
DELETE .../webhooks/{id}
POST   .../webhooks/{id}/secret       a new signing secret; the earlier ones sign overlap_hours
POST   .../webhooks/{id}/test         a `test` event to this endpoint
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn

from aiohttp import web

from bot.config import WEBHOOK_EVENTS
from bot.services.deliveries import NoEndpoints
from bot.services.endpoints import FORMATS, MAX_DESCRIPTION, MAX_URL, Saved
from bot.services.subscribers import Actor, Reason, Refused
from bot.web.account import QueuedEndpoint, QueuedTest, active_subscriber
from bot.web.auth import ADMIN_ERRORS, SUBSCRIBER_ERRORS, require_admin, require_subscriber
from bot.web.catalog import Error
from bot.web.clients import client_address
from bot.web.deliveries import Endpoint
from bot.web.deliveries import Endpoints as EndpointList
from bot.web.errors import JSON_ERRORS, READ_ERRORS, fail
from bot.web.operations import ApiRoutes, Handler, MaybeTime, doc, json_response, path_param
from bot.web.request_services import deliveries_service, endpoints_service
from bot.web.row_json import iso
from bot.web.send import ACTIVE_ERRORS
from bot.web.snapshot import snapshot_of
from bot.web.subscribers import json_body

routes = ApiRoutes()

Refusals = dict[Reason, Error]
OWNER_REFUSALS: Refusals = {"not_found": Error.UNKNOWN_SUBSCRIBER,
                            "not_self_service": Error.NOT_SELF_SERVICE}
FOUND_REFUSALS: Refusals = OWNER_REFUSALS | {"unknown_endpoint": Error.UNKNOWN_ENDPOINT,
                                             "provisioned": Error.PROVISIONED}
FIELD_REFUSALS: Refusals = {"invalid": Error.INVALID_FIELD, "missing": Error.MISSING_FIELD,
                            "invalid_url": Error.REFUSED_URL}
CREATE_REFUSALS = OWNER_REFUSALS | FIELD_REFUSALS | {"too_many": Error.TOO_MANY_ENDPOINTS}
UPDATE_REFUSALS = FOUND_REFUSALS | FIELD_REFUSALS
ROTATE_REFUSALS = FOUND_REFUSALS | {"invalid": Error.INVALID_FIELD}


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSaved:
    """An endpoint as saved, with the credential issued: shown this once."""

    endpoint: Endpoint
    secret: Annotated[str | None, doc(
        "A new signing secret (format standard), shown this once; null: none issued")]
    token: Annotated[str | None, doc(
        "A new token (format whatsmate), shown this once; null: none issued")]
    older_secrets_until: Annotated[MaybeTime, doc(
        "When the earlier signing secrets stop signing (a rotation's overlap)")]


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointDeleted:
    status: Literal["deleted"] = "deleted"
    id: str


# ---- who asks: the subscriber itself, or the admin for a subscriber

Who = Callable[[web.Request], tuple[str, Actor]]


def _itself(request: web.Request) -> tuple[str, Actor]:
    sub = require_subscriber(request, snapshot_of(request).config)
    return sub.id, Actor(f"subscriber:{sub.id}", client_address(request))


def _itself_active(request: web.Request) -> tuple[str, Actor]:
    sub = active_subscriber(request)
    return sub.id, Actor(f"subscriber:{sub.id}", client_address(request))


def _admin(request: web.Request) -> tuple[str, Actor]:
    """The subscriber is judged later (after a body is read, so a malformed
    one is a 400 whoever it is for): by the service, or by `_known`."""
    require_admin(request)
    return request.match_info["id"][:200], Actor("admin", client_address(request))


def _known(request: web.Request, subscriber_id: str) -> None:
    if subscriber_id not in snapshot_of(request).config.subscribers:
        fail(Error.UNKNOWN_SUBSCRIBER, f"no subscriber {subscriber_id[:80]!r}")


def _refused(exc: Refused, refusals: Refusals) -> NoReturn:
    fail(refusals[exc.reason], exc.message)


async def _shown(request: web.Request, subscriber_id: str, key: str) -> Endpoint:
    """One endpoint of the subscriber's, from the store or the file, with its health."""
    found = [e for e in await deliveries_service(request).endpoints(
        snapshot_of(request).config, subscriber_id=subscriber_id)
        if e.key == key and e.hook is not None]  # not one only in the delivery history
    if not found:
        fail(Error.UNKNOWN_ENDPOINT, f"no webhook endpoint {key[:80]!r} of subscriber "
                                     f"{subscriber_id[:80]!r}")
    return Endpoint.of(found[0])


async def _saved(request: web.Request, saved: Saved, status: int = 200) -> web.Response:
    return json_response(EndpointSaved(
        endpoint=await _shown(request, saved.endpoint.subscriber_id, saved.endpoint.id),
        secret=saved.secret, token=saved.token, older_secrets_until=iso(saved.older_until)),
        status=status)


# ---- the handlers, each made once per audience

def _create(who: Who) -> Handler:
    async def create(request: web.Request) -> web.Response:
        sub_id, actor = who(request)
        body = await json_body(request)
        try:
            saved = await endpoints_service(request).create(snapshot_of(request).config,
                                                            sub_id, body, actor)
        except Refused as exc:
            _refused(exc, CREATE_REFUSALS)
        return await _saved(request, saved, status=201)
    return create


def _list(who: Who) -> Handler:
    async def list_all(request: web.Request) -> web.Response:
        sub_id, _ = who(request)
        _known(request, sub_id)
        found = await deliveries_service(request).endpoints(snapshot_of(request).config,
                                                            subscriber_id=sub_id)
        return json_response(EndpointList(endpoints=[Endpoint.of(e) for e in found]))
    return list_all


def _get(who: Who, param: str) -> Handler:
    async def get_one(request: web.Request) -> web.Response:
        sub_id, _ = who(request)
        _known(request, sub_id)
        return json_response(await _shown(request, sub_id, request.match_info[param][:200]))
    return get_one


def _update(who: Who, param: str) -> Handler:
    async def update(request: web.Request) -> web.Response:
        sub_id, actor = who(request)
        body = await json_body(request)
        try:
            saved = await endpoints_service(request).update(
                snapshot_of(request).config, sub_id, request.match_info[param][:200], body,
                actor)
        except Refused as exc:
            _refused(exc, UPDATE_REFUSALS)
        return await _saved(request, saved)
    return update


def _delete(who: Who, param: str) -> Handler:
    async def delete(request: web.Request) -> web.Response:
        sub_id, actor = who(request)
        endpoint_id = request.match_info[param][:200]
        try:
            await endpoints_service(request).delete(snapshot_of(request).config, sub_id,
                                                    endpoint_id, actor)
        except Refused as exc:
            _refused(exc, FOUND_REFUSALS)
        return json_response(EndpointDeleted(id=endpoint_id))
    return delete


def _rotate(who: Who, param: str) -> Handler:
    async def rotate(request: web.Request) -> web.Response:
        sub_id, actor = who(request)
        body = await json_body(request, required=False)
        if unknown := sorted(set(body) - {"overlap_hours"}):
            fail(Error.INVALID_FIELD, f"unknown field {unknown[0][:40]!r} (known: "
                                      "overlap_hours)")
        try:
            saved = await endpoints_service(request).rotate(
                snapshot_of(request).config, sub_id, request.match_info[param][:200],
                body.get("overlap_hours"), actor)
        except Refused as exc:
            _refused(exc, ROTATE_REFUSALS)
        return await _saved(request, saved)
    return rotate


def _test(who: Who, param: str) -> Handler:
    async def test(request: web.Request) -> web.Response:
        sub_id, _ = who(request)
        _known(request, sub_id)
        key = request.match_info[param][:200]
        try:
            [draft] = await deliveries_service(request).send_test(
                snapshot_of(request).config, sub_id, time.time(), endpoint_key=key)
        except NoEndpoints:
            fail(Error.UNKNOWN_ENDPOINT, f"no enabled webhook endpoint {key[:80]!r} of "
                                         f"subscriber {sub_id[:80]!r}")
        return json_response(QueuedTest(id=draft.id, endpoint=QueuedEndpoint(
            key=draft.endpoint_key, url=draft.url)))
    return test


# ---- the operations, for each audience

_FIELDS: dict[str, Any] = {
    "url": {"type": "string", "maxLength": MAX_URL, "description": (
        "http(s), or a broker: nats://, amqp://, redis:// (its password, if any, is kept "
        "apart and never shown). Refused (400 refused_url, saying why) when its host is or "
        "resolves to a private, loopback or link-local address not allowed by the service")},
    "format": {"enum": list(FORMATS), "default": "standard"},
    "events": {"type": "array", "items": {"enum": list(WEBHOOK_EVENTS)}, "minItems": 1,
               "description": "Default: all"},
    "enabled": {"type": "boolean", "default": True},
    "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION}}
_CREATE_BODY = {"type": "object", "required": ["url"], "additionalProperties": False,
                "properties": _FIELDS}
_UPDATE_BODY = {"type": "object", "additionalProperties": False, "properties": _FIELDS}
_OVERLAP_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "overlap_hours": {"type": "number", "minimum": 0, "default": 24,
                      "description": "How long the earlier signing secrets go on signing; "
                                     "0 stops them now"}}}
_BODY_ERRORS = READ_ERRORS | JSON_ERRORS


def _register(prefix: str, param: str, who: Who, active: Who, audience: dict[str, Any],
              id_prefix: str, errors: frozenset[Error], one: dict[str, Any],
              whose: str) -> None:
    """The six operations of `prefix` (…/webhooks) for one audience."""
    item = f"{prefix}/{{{param}}}"
    params = (*audience.pop("parameters", ()), one)
    found = errors | {Error.UNKNOWN_ENDPOINT}
    routes.operation(
        "post", prefix, id=f"{id_prefix}create_webhook", parameters=params[:-1],
        summary=f"Add a webhook endpoint to {whose}: its signing secret (or token) shown once",
        ok=EndpointSaved, ok_description="Created", body=_CREATE_BODY,
        description="Standard endpoints get a `whsec_` signing secret, whatsmate ones a "
                    "token, each in this answer only. In force in every process within a "
                    "second.", errors=found | _BODY_ERRORS | set(CREATE_REFUSALS.values()),
        **audience)(_create(who))
    routes.operation(
        "get", item, id=f"{id_prefix}get_webhook", parameters=params,
        summary=f"One of {whose} webhook endpoints, with its health", ok=Endpoint,
        ok_description="The endpoint, never a secret", errors=found, **audience)(
        _get(who, param))
    routes.operation(
        "patch", item, id=f"{id_prefix}update_webhook", parameters=params,
        summary=f"Change one of {whose} webhook endpoints", ok=EndpointSaved,
        ok_description="As it is now", body=_UPDATE_BODY,
        description="A change of format issues the new format's secret or token, shown in "
                    "this answer. enabled: false stops its events until enabled again (which "
                    "also ends a disabling after failures). An endpoint of the config file "
                    "answers 409 provisioned.",
        errors=errors | _BODY_ERRORS | set(UPDATE_REFUSALS.values()), **audience)(
        _update(who, param))
    routes.operation(
        "delete", item, id=f"{id_prefix}delete_webhook", parameters=params,
        summary=f"Delete one of {whose} webhook endpoints", ok=EndpointDeleted,
        ok_description="Deleted", description="Its delivery history stays.",
        errors=errors | set(FOUND_REFUSALS.values()), **audience)(_delete(who, param))
    routes.operation(
        "post", f"{item}/secret", id=f"{id_prefix}rotate_webhook_secret", parameters=params,
        summary="Issue a new signing secret (shown once); the earlier ones go on signing "
                "overlap_hours", ok=EndpointSaved, ok_description="Issued", body=_OVERLAP_BODY,
        body_required=False,
        description="During the overlap every delivery carries one signature per valid "
                    "secret, space-separated (`v1,<new> v1,<old>`), so receivers switch at "
                    "their pace. A whatsmate endpoint gets a new token, in force at once.",
        errors=errors | _BODY_ERRORS | set(ROTATE_REFUSALS.values()), **audience)(
        _rotate(who, param))
    routes.operation(
        "post", f"{item}/test", id=f"{id_prefix}test_webhook", parameters=params,
        summary="Send a `test` event to this endpoint", ok=QueuedTest,
        ok_description="The delivery queued",
        description="Queued, signed and retried like any delivery, whatever events the "
                    "endpoint subscribes to.",
        errors=(ACTIVE_ERRORS if active is not who else errors) | found,
        **audience)(_test(active, param))


_register("/v3/account/webhooks", "id", _itself, _itself_active,
          {"tag": "account", "security": "account"}, "account_",
          SUBSCRIBER_ERRORS | {Error.UNKNOWN_SUBSCRIBER},  # deleted meanwhile
          path_param("id", "The endpoint's id"), "your")
routes.operation(
    "get", "/admin/subscribers/{id}/webhooks", id="list_subscriber_webhooks",
    summary="A subscriber's webhook endpoints (the config file's and the store's), with "
            "their health", ok=EndpointList, ok_description="Endpoints, never a secret",
    tag="subscribers", security="admin", parameters=(path_param("id", "The subscriber's id"),),
    errors=ADMIN_ERRORS | {Error.UNKNOWN_SUBSCRIBER})(_list(_admin))
_register("/admin/subscribers/{id}/webhooks", "key", _admin, _admin,
          {"tag": "subscribers", "security": "admin",
           "parameters": (path_param("id", "The subscriber's id"),)},
          "admin_", ADMIN_ERRORS | {Error.UNKNOWN_SUBSCRIBER},
          path_param("key", "The endpoint's id (its key)"), "a subscriber's")
