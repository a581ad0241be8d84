"""`GET /openapi.json`: the send, account, admin and operational APIs as OpenAPI 3.1.

Assembled once at import from the operations each route module declares
beside its handlers (`bot.web.operations`): response schemas generated from
their dataclasses, error responses from the catalog errors each route
declares (`bot.web.catalog`). The providers' routes (`/webhooks/<name>`) are
left out: the providers call them, not developers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from bot.providers.sandbox import inbound as sandbox
from bot.web import (
    account,
    admin,
    deliveries,
    endpoints,
    health,
    media,
    notices,
    send,
    subscribers,
)
from bot.web.catalog import Error
from bot.web.operations import ApiRoutes, Operation, Schemas, json_response, ref

routes = ApiRoutes()


@routes.operation("get", "/openapi.json", summary="This document", tag="operations",
                  security="open", ok={"type": "object"}, ok_description="OpenAPI 3.1",
                  errors=())
async def openapi(request: web.Request) -> web.Response:
    return json_response(DOCUMENT)


# Every documented route, by module.
TABLES: tuple[ApiRoutes, ...] = (send.routes, account.routes, endpoints.routes, admin.routes,
                                 subscribers.routes,
                                 notices.routes, deliveries.routes, media.routes,
                                 sandbox.routes, health.routes, routes)

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "admin": [{"AdminToken": []}], "account": [{"ClientId": [], "ClientSecret": []}],
    "open": []}

TAGS = [{"name": "send", "description": "The subscriber send API"},
        {"name": "account", "description": "A subscriber's own account, messages and webhook "
                                           "deliveries"},
        {"name": "admin", "description": "Registrations, message log, config"},
        {"name": "subscribers", "description": "Subscribers managed at runtime, their client "
                                               "secrets, the audit log"},
        {"name": "deliveries", "description": "Webhook deliveries and endpoints"},
        {"name": "media", "description": "Files users sent, by their signed links"},
        {"name": "sandbox", "description": "The sandbox transport over HTTP"},
        {"name": "operations", "description": "Liveness, readiness, metrics"}]

# The error bodies with more than the slug and the message.
_ERROR_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error_message", "error"],
              "properties": {"error_message": {"type": "string"},
                             "error": {"type": "string"}}},
    "QuotaError": {"allOf": [ref("schemas", "Error"), {
        "type": "object", "required": ["reset_at", "limit"], "properties": {
            "reset_at": {"type": "string", "format": "date-time"},
            "limit": {"type": "integer"}}}]},
    "WindowError": {"allOf": [ref("schemas", "Error"), {
        "type": "object", "required": ["window_closed_at"], "properties": {
            "window_closed_at": {"type": ["string", "null"], "format": "date-time",
                                 "description": "null: the user never wrote"}}}]},
}
_BODY_OF = {Error.QUOTA_EXCEEDED: "QuotaError", Error.OUTSIDE_WINDOW: "WindowError"}
_HEADERS_OF = {
    Error.UNAUTHORIZED: {"WWW-Authenticate": {"description": "Bearer",
                                              "schema": {"type": "string"}}},
    Error.QUOTA_EXCEEDED: {"Retry-After": {"description": "Seconds until the quota period "
                                                          "ends",
                                           "schema": {"type": "integer"}}}}


def error_responses(errors: Iterable[Error]) -> dict[str, Any]:
    """One response per status, naming each slug the route can answer with it."""
    by_status: dict[int, list[Error]] = {}
    for error in sorted(errors, key=lambda e: (e.status, e.slug)):
        by_status.setdefault(error.status, []).append(error)
    responses: dict[str, Any] = {}
    for status, members in sorted(by_status.items()):
        slugs = sorted({e.slug for e in members})
        body = next((_BODY_OF[e] for e in members if e in _BODY_OF), "Error")
        lines = "\n".join(f"- `{e.slug}`: {e.summary}" for e in members)
        response: dict[str, Any] = {
            "description": f"{lines}\n\n(error: {', '.join(slugs)})",
            "content": {"application/json": {"schema": {
                **ref("schemas", body),
                "properties": {"error": {"enum": slugs}}}}}}
        headers = {k: v for e in members for k, v in _HEADERS_OF.get(e, {}).items()}
        if headers:
            response["headers"] = headers
        responses[str(status)] = response
    return responses


def _operation(op: Operation, schemas: Schemas) -> dict[str, Any]:
    ok_schema = schemas.inline(op.ok) if isinstance(op.ok, type) else op.ok
    out: dict[str, Any] = {
        "operationId": op.id, "summary": op.summary, "tags": [op.tag],
        "parameters": list(op.parameters),
        "responses": {"200": {"description": op.ok_description,
                              "content": {op.ok_content_type: {"schema": ok_schema}}},
                      **op.other_responses, **error_responses(op.errors)}}
    if op.security in _SECURITY:
        out["security"] = _SECURITY[op.security]
    if op.description:
        out["description"] = op.description
    if op.body is not None:
        content = {"application/json": {"schema": op.body}}
        if op.form:  # the same fields form-encoded: every value a string
            content["application/x-www-form-urlencoded"] = {"schema": {
                **op.body, "properties": {name: {**schema, "type": "string"}
                                          for name, schema in op.body["properties"].items()}}}
        out["requestBody"] = {"required": op.body_required, "content": content}
    return out


def build_document(tables: Iterable[ApiRoutes] = TABLES) -> dict[str, Any]:
    schemas = Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for table in tables:
        for op in table.operations:
            paths.setdefault(op.path, {})[op.method] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "wagate API (send API WhatsMate v3 compatible)", "version": "3",
                 "description": "Send WhatsApp messages to registered users and groups "
                                "(`send`, X-WM-CLIENT-ID/SECRET headers) and check one's "
                                "own account (`account`, the same headers); administer "
                                "registrations, messages, config and webhook deliveries "
                                "(`admin`, `deliveries`, Bearer admin token); drive the "
                                "sandbox transport (`sandbox`); probe the service "
                                "(`operations`, open). Each error response lists the "
                                "`error` slugs the operation can answer with."},
        "security": [{"ClientId": [], "ClientSecret": []}],
        "tags": TAGS,
        "paths": paths,
        "components": {
            "securitySchemes": {
                "ClientId": {"type": "apiKey", "in": "header", "name": "X-WM-CLIENT-ID"},
                "ClientSecret": {"type": "apiKey", "in": "header", "name": "X-WM-CLIENT-SECRET"},
                "AdminToken": {"type": "http", "scheme": "bearer",
                               "description": "[admin] token from the config file"},
            },
            "parameters": {"Instance": {"name": "n", "in": "path", "required": True,
                                        "description": "The gateway number's instance id",
                                        "schema": {"type": "integer", "minimum": 1}},
                           "Limit": {"name": "limit", "in": "query", "required": False,
                                     "description": "At most this many rows (clamped to "
                                                    "1..1000); 400 invalid_query when not "
                                                    "an integer",
                                     "schema": {"type": "integer", "default": 100}}},
            "schemas": {**schemas.components, **_ERROR_SCHEMAS},
        },
    }


DOCUMENT = build_document()
