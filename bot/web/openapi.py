"""`GET /openapi.json`: the send API described as OpenAPI 3.1.

Written by hand (the routes are few and their leniencies matter more than
their types), built once at import, and kept true by a test that compares it
with the app's router both ways.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.content import MAX_CAPTION, MAX_DOCUMENT, MAX_IMAGE, MAX_TEXT
from bot.web.send import KINDS, send_path

routes = web.RouteTableDef()

_ERROR = {"$ref": "#/components/schemas/Error"}

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Bad request", "malformed_json, missing_field, invalid_field, duplicate_field, "
          "text_too_long, caption_too_long, invalid_url, bad_base64, unsupported_image, "
          "unsupported_document, bad_filename"),
    401: ("A credential header is missing", "missing_credentials"),
    403: ("The plan does not include this kind of message", "feature_not_in_plan"),
    404: ("Unknown instance, one this subscriber may not use, or unknown group",
          "unknown_instance, unknown_group"),
    413: ("Image over 2 MB or document over 3 MB decoded, or body over the server's limit",
          "image_too_large, document_too_large, payload_too_large"),
    469: ("Quota of the running 24-hour period used up", "quota_exceeded"),
    470: ("The image or document is empty", "empty_media"),
    471: ("Destination number invalid", "invalid_number"),
    472: ("Recipient has not registered with the gateway number, or opted out",
          "not_registered"),
    473: ("The plan's total recipient limit is reached", "recipient_limit"),
    474: ("Invalid CLIENT ID / secret, or the subscription is not active",
          "invalid_credentials, subscription_expired, subscription_not_started"),
}

_PROPERTIES: dict[str, dict[str, Any]] = {
    "number": {"type": ["string", "integer"], "examples": ["+34600000001", "34 600-000-001"],
               "description": "Recipient, with country code; '+', spaces and dashes allowed."},
    "message": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT,
                "description": "Text. Emoji shortcuts such as (y), :-) and <3 become emoji "
                               "as whole tokens."},
    "image": {"type": "string", "contentEncoding": "base64",
              "description": f"JPEG, PNG, WebP or GIF (JPEG/PNG on meta numbers), at most "
                             f"{MAX_IMAGE} bytes decoded; a data:...;base64, prefix is allowed."},
    "document": {"type": "string", "contentEncoding": "base64",
                 "description": f"A PDF, at most {MAX_DOCUMENT} bytes decoded; a "
                                "data:...;base64, prefix is allowed."},
    "filename": {"type": "string", "examples": ["invoice.pdf"],
                 "description": "Folders and control characters are removed; must end in "
                                ".pdf (appended when there is no extension)."},
    "caption": {"type": ["string", "null"], "maxLength": MAX_CAPTION},
    "url": {"type": "string", "format": "uri", "description": "http(s) URL, sent as text "
                                                                "with a link preview."},
    "group_name": {"type": "string", "description": "A group registered on the instance "
                                                    "(matched ignoring case and extra spaces)."},
    "group_admin": {"type": ["string", "integer", "null"],
                    "description": "Accepted for WhatsMate compatibility; must be a phone "
                                   "number when given; not used to find the group."},
}

_CONTENT = {"text": ["message"], "image": ["image", "caption"],
            "document": ["document", "filename", "caption"], "url": ["url"]}
_OPTIONAL = {"caption", "group_admin"}


def _body(group: bool, kind: str) -> dict[str, Any]:
    names = ["group_name", "group_admin"] if group else ["number"]
    names += _CONTENT[kind]
    return {"type": "object", "properties": {n: _PROPERTIES[n] for n in names},
            "required": [n for n in names if n not in _OPTIONAL]}


def _responses(codes: list[int], ok: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"200": ok}
    for code in codes:
        summary, slugs = _ERRORS[code]
        response: dict[str, Any] = {"description": f"{summary} (error: {slugs})",
                                    "content": {"application/json": {"schema": _ERROR}}}
        if code == 469:
            response["headers"] = {"Retry-After": {
                "description": "Seconds until the quota period ends",
                "schema": {"type": "integer"}}}
            response["content"] = {"application/json": {"schema": {
                "$ref": "#/components/schemas/QuotaError"}}}
        out[str(code)] = response
    return out


def _send_operation(group: bool, kind: str) -> dict[str, Any]:
    audience = "group" if group else "single"
    codes = [400, 401, 403, 404, 413, 469, 473, 474]
    if kind in ("image", "document"):
        codes.append(470)
    if not group:
        codes += [471, 472]
    return {"post": {
        "operationId": f"send_{audience}_{kind}",
        "summary": f"Send a {kind} message to a {'group' if group else 'number'}",
        "description": "The body is read as JSON whatever the Content-Type; keys are "
                       "matched ignoring stray white space and case.",
        "tags": ["send"],
        "parameters": [{"$ref": "#/components/parameters/Instance"}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _body(group, kind)}}},
        "responses": _responses(sorted(codes), {
            "description": "Queued; a worker sends it",
            "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Queued"}}}}),
    }}


def build_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for audience in ("single", "group"):
        for kind in KINDS:
            paths[send_path(audience, kind)] = _send_operation(audience == "group", kind)
    paths["/v3/whatsapp/messages/{id}"] = {"get": {
        "operationId": "message_status",
        "summary": "A sent message's status (only its sender may see it)",
        "tags": ["send"],
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "string", "format": "uuid"}}],
        "responses": _responses([401, 404, 474], {
            "description": "The message",
            "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Message"}}}}),
    }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "wagate send API (WhatsMate v3 compatible)", "version": "3",
                 "description": "Send WhatsApp messages to registered users and groups."},
        "security": [{"ClientId": [], "ClientSecret": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "ClientId": {"type": "apiKey", "in": "header", "name": "X-WM-CLIENT-ID"},
                "ClientSecret": {"type": "apiKey", "in": "header", "name": "X-WM-CLIENT-SECRET"},
            },
            "parameters": {"Instance": {"name": "n", "in": "path", "required": True,
                                        "description": "The gateway number's instance id",
                                        "schema": {"type": "integer", "minimum": 1}}},
            "schemas": {
                "Queued": {"type": "object", "required": ["status", "id"], "properties": {
                    "status": {"const": "queued"}, "id": {"type": "string", "format": "uuid"}}},
                "Error": {"type": "object", "required": ["error_message", "error"],
                          "properties": {"error_message": {"type": "string"},
                                         "error": {"type": "string"}}},
                "QuotaError": {"allOf": [{"$ref": "#/components/schemas/Error"}, {
                    "type": "object", "required": ["reset_at", "limit"], "properties": {
                        "reset_at": {"type": "string", "format": "date-time"},
                        "limit": {"type": "integer"}}}]},
                "Message": {"type": "object", "properties": {
                    "id": {"type": "string"},
                    "status": {"enum": ["queued", "sent", "delivered", "read", "failed"]},
                    "instance": {"type": "integer"},
                    "type": {"enum": list(KINDS)},
                    "to": {"type": ["string", "null"]},
                    "group": {"type": ["string", "null"]},
                    "reason": {"type": ["string", "null"]},
                    "error": {"type": ["object", "null"], "properties": {
                        "code": {"type": ["integer", "null"]},
                        "title": {"type": ["string", "null"]}}},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"}}},
            },
        },
    }


DOCUMENT = build_document()


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
