"""`GET /openapi.json`: the send, admin and operational APIs as OpenAPI 3.1.

Written by hand (the routes are few and their leniencies matter more than
their types), built once at import, and kept true by a test that compares it
with the app's router both ways. The providers' routes (`/webhooks/<name>`,
Twilio's `/media/{id}`) are left out: the providers call them, not developers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.content import MAX_CAPTION, MAX_DOCUMENT, MAX_IMAGE, MAX_TEXT
from bot.events import STATUSES
from bot.providers.sandbox import inbound as sandbox
from bot.web.send import KINDS, TEMPLATE_PATH, send_path

routes = web.RouteTableDef()

_ERROR = {"$ref": "#/components/schemas/Error"}

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Bad request", "malformed_json, malformed_form, malformed_body, incomplete_body, "
          "invalid_text, missing_field, invalid_field, duplicate_field, text_too_long, "
          "caption_too_long, invalid_url, bad_base64, unsupported_image, unsupported_document, "
          "bad_filename"),
    401: ("A credential header is missing", "missing_credentials"),
    403: ("The plan does not include this kind of message, or the instance's provider "
          "cannot send it (e.g. group messages through Twilio)",
          "feature_not_in_plan, not_supported_by_provider"),
    404: ("Unknown instance, one this subscriber may not use, or unknown group",
          "unknown_instance, unknown_group"),
    408: ("The body stopped arriving before all of it came ([server] body_timeout)",
          "body_timeout"),
    413: ("Image over 2 MB or document over 3 MB decoded, or body over the server's limit",
          "image_too_large, document_too_large, payload_too_large"),
    415: ("The body is compressed (Content-Encoding other than identity); send it "
          "uncompressed", "unsupported_encoding"),
    469: ("Quota of the running 24-hour period used up", "quota_exceeded"),
    470: ("The image or document is empty", "empty_media"),
    471: ("Destination number invalid", "invalid_number"),
    472: ("Recipient has not registered with the gateway number, or opted out",
          "not_registered"),
    473: ("The plan's total recipient limit is reached", "recipient_limit"),
    474: ("Invalid CLIENT ID / secret, or the subscription is not active",
          "invalid_credentials, subscription_expired, subscription_not_started"),
    475: ("Outside the recipient's 24-hour customer-service window (they last wrote over 24 "
          "hours ago) on a number whose provider has one, and no notification template is "
          "configured for it; `window_closed_at` says since when. Nothing is queued",
          "outside_window"),
}

_PROPERTIES: dict[str, dict[str, Any]] = {
    "number": {"type": ["string", "integer"],
               "examples": ["+34600000001", "34 600-000-001", "US.13491208655302741918"],
               "description": "Recipient, with country code; '+', '00', spaces and dashes "
                              "allowed. Digits without '+' or '00' must make a valid number "
                              "once '+' is put in front (else 471: the country code is "
                              "missing). Or the business-scoped user id of a user the "
                              "provider names without a number."},
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


def _form_body(group: bool, kind: str) -> dict[str, Any]:
    """The same fields form-encoded: every value a string."""
    body = _body(group, kind)
    body["properties"] = {name: {**schema, "type": "string"}
                          for name, schema in body["properties"].items()}
    return body


def _error(summary: str, slugs: str) -> dict[str, Any]:
    """One error response: the shared Error body, its slugs in the description."""
    return {"description": f"{summary} (error: {slugs})",
            "content": {"application/json": {"schema": _ERROR}}}


def _responses(codes: list[int], ok: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"200": ok}
    for code in codes:
        response = _error(*_ERRORS[code])
        if code == 475:
            response["content"] = {"application/json": {"schema": {
                "$ref": "#/components/schemas/WindowError"}}}
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
    codes = [400, 401, 403, 404, 408, 413, 415, 469, 473, 474]
    if kind in ("image", "document"):
        codes.append(470)
    if not group:
        codes += [471, 472, 475]
    return {"post": {
        "operationId": f"send_{audience}_{kind}",
        "summary": f"Send a {kind} message to a {'group' if group else 'number'}",
        "description": "The body is read as JSON whatever the Content-Type, except that "
                       "application/x-www-form-urlencoded takes the same fields form-encoded "
                       "(a '+' left unencoded in base64 or before a number is kept); keys "
                       "are matched ignoring stray white space and case. Bodies are taken "
                       "uncompressed only.",
        "tags": ["send"],
        "parameters": [{"$ref": "#/components/parameters/Instance"}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _body(group, kind)},
            "application/x-www-form-urlencoded": {"schema": _form_body(group, kind)}}},
        "responses": _responses(sorted(codes), {
            "description": "Queued; a worker sends it",
            "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Queued"}}}}),
    }}


# ---- admin, deliveries, sandbox and operations


_UNAUTHORIZED: dict[str, Any] = {
    **_error("Admin token missing or wrong: send Authorization: Bearer <token>", "unauthorized"),
    "headers": {"WWW-Authenticate": {"description": "Bearer",
                                     "schema": {"type": "string"}}}}
_BAD_QUERY = "invalid_query (a parameter that must be an integer is not one, or is out of range)"
_BAD_BODY = "malformed_json, invalid_text (NUL or lone surrogates in a string)"
_TOO_LARGE = ("Request body over the limit", "payload_too_large")
_BAD_NUMBER = "invalid_number (not a phone number with country code)"


def _ref(section: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{section}/{name}"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    """A response object: every listed property is always present."""
    return {"type": "object", "required": list(properties), "properties": properties}


def _list_of(key: str, schema: str) -> dict[str, Any]:
    return _object({key: {"type": "array", "items": _ref("schemas", schema)}})


def _query(name: str, description: str, schema: dict[str, Any],
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string"}}


def _admin(method: str, operation_id: str, summary: str, ok: dict[str, Any], *,
           tag: str = "admin", parameters: list[dict[str, Any]] | None = None,
           errors: dict[int, tuple[str, str]] | None = None,
           body: dict[str, Any] | None = None, body_required: bool = True,
           description: str | None = None) -> dict[str, Any]:
    """An operation behind the admin Bearer token: 401 always possible."""
    responses: dict[str, Any] = {"200": ok, "401": _UNAUTHORIZED}
    for code, (why, slugs) in sorted((errors or {}).items()):
        responses[str(code)] = _error(why, slugs)
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary,
                                 "tags": [tag], "security": [{"AdminToken": []}],
                                 "parameters": parameters or [], "responses": responses}
    if description:
        operation["description"] = description
    if body is not None:
        operation["requestBody"] = {"required": body_required,
                                    "content": {"application/json": {"schema": body}}}
    return {method: operation}


def _open(operation_id: str, summary: str, responses: dict[str, Any],
          description: str | None = None) -> dict[str, Any]:
    """An open GET (no credential): liveness, readiness, metrics, this document."""
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary,
                                 "tags": ["operations"], "security": [],
                                 "responses": responses}
    if description:
        operation["description"] = description
    return {"get": operation}


def _admin_paths() -> dict[str, Any]:
    limit = _ref("parameters", "Limit")
    instance = _query("instance", "Only this instance id", {"type": "integer"})
    number = _path("number", "Phone number with country code ('+', spaces, dashes allowed), "
                   "or a provider's user id")
    registrations = _json("Registrations", _list_of("registrations", "Registration"))
    return {
        "/admin/costs": _admin(
            "get", "costs", "Messages by subscriber and the provider's pricing category",
            _json("Counts", _list_of("costs", "Cost"))),
        "/admin/registrations": _admin(
            "get", "list_registrations", "List registrations, newest first", registrations,
            parameters=[instance, _query("status", "Only this status",
                                         {"enum": ["active", "opted_out"]}), limit],
            errors={400: ("Bad query parameter", f"{_BAD_QUERY}, invalid_status")}),
        "/admin/registrations/{number}": _admin(
            "get", "number_registrations", "A number's registrations on every instance",
            registrations, parameters=[number],
            errors={400: ("Bad number", _BAD_NUMBER),
                    404: ("The number never wrote to this gateway", "unknown_number")}),
        "/admin/registrations/{number}/opt-out": _admin(
            "post", "opt_out", "Opt a number out by hand",
            _json("The registrations it touched; `changed` counts those not opted out "
                  "before", _object({"changed": {"type": "integer", "minimum": 0},
                                     "registrations": {"type": "array", "items": _ref(
                                         "schemas", "Registration")}})),
            description="On one instance (`instance` in the query or the JSON body), else on "
                        "every configured instance. Sends are refused from then on; no "
                        "message goes to the user, who comes back by saying Hi. Each active "
                        "registration ended raises `user.unregistered` (`source: admin`).",
            parameters=[number, _query("instance", "Only this instance id (wins over the "
                                                   "body)", {"type": "integer"})],
            body={"type": "object", "properties": {"instance": {"type": "integer"}}},
            body_required=False,
            errors={400: ("Bad number, instance or body", f"{_BAD_NUMBER}, {_BAD_QUERY}, "
                                                          f"invalid_instance, {_BAD_BODY}"),
                    404: ("Instance not configured", "unknown_instance"),
                    413: ("Request body over 4096 bytes", "payload_too_large")}),
        "/admin/messages": _admin(
            "get", "list_messages", "The message log (inbound and outbound), newest first",
            _json("Messages", _list_of("messages", "LoggedMessage")),
            parameters=[_query("direction", "Only this direction", {"enum": ["in", "out"]}),
                        instance, _query("number", "Only this phone number",
                                         {"type": "string"}), limit],
            errors={400: ("Bad query parameter",
                          f"{_BAD_QUERY}, invalid_direction, {_BAD_NUMBER}")}),
        "/admin/reload": _admin(
            "post", "reload", "Reload the config file (as SIGHUP does)",
            _json("Reloaded", _object({"status": {"const": "reloaded"},
                                       "generation": {"type": "integer"}})),
            errors={422: ("The new config is refused; the old one stays in force",
                          "reload_refused")}),
        "/admin/config": _admin(
            "get", "config_summary", "The config in force: ids and names, never a secret",
            _json("Summary", _object({
                "generation": {"type": "integer"},
                "loaded_at": {"type": "string", "format": "date-time"},
                "path": {"type": ["string", "null"]},
                "instances": {"type": "array", "items": _object({
                    "id": {"type": "integer"}, "number": {"type": "string"},
                    "provider": {"type": "string"}, "owner": {"type": ["string", "null"]}})},
                "subscribers": {"type": "array", "items": _object({
                    "id": {"type": "string"}, "plan": {"type": "string"},
                    "instances": {"type": "array", "items": {"type": "integer"}},
                    "webhooks": {"type": "integer", "description": "How many"}})},
                "plans": {"type": "array", "items": {"type": "string"}},
                "locales": {"type": "array", "items": {"type": "string"}},
                "default_locale": {"type": "string"}}))),
    }


def _profile_paths() -> dict[str, Any]:
    """The gateway number's business profile (bot/web/admin.py, bot/profile.py)."""
    from bot.profile import MAX_ABOUT, MAX_DESCRIPTION, MAX_EMAIL, MAX_WEBSITE, MAX_WEBSITES

    instance = _path("id", "The instance (gateway number) id", {"type": "integer",
                                                                 "minimum": 1})
    text = {"type": ["string", "null"]}
    fields = {"type": "array", "items": {"enum": ["about", "description", "email", "picture",
                                                   "websites"]}}
    view = _json("The profile in force and how its last application went", _object({
        "instance": {"type": "integer"}, "provider": {"type": "string"},
        "supported_fields": {**fields, "description": "What the provider can set; empty "
                                                      "when its API offers no profile"},
        "source": {"enum": ["config", "admin", None],
                   "description": "admin: set through this API (until the process stops)"},
        "profile": {"type": ["object", "null"], "properties": {
            "about": text, "description": text, "email": text,
            "websites": {"type": "array", "items": {"type": "string"}},
            "picture": {"type": ["object", "null"], "properties": {
                "bytes": {"type": "integer"}, "type": {"enum": ["image/jpeg", "image/png"]},
                "sha256": {"type": "string"}}}}},
        "not_supported": {**fields, "description": "Fields of this profile the provider "
                                                   "cannot set (not applied)"},
        "state": {"type": ["object", "null"], "properties": {
            "status": {"enum": ["applied", "partial", "failed", "unsupported"]},
            "source": {"enum": ["config", "admin"]}, "hash": {"type": "string"},
            "applied": fields, "not_supported": fields, "error": text,
            "at": {"type": "number", "description": "Unix time"}}}}))
    body = {"type": "object", "minProperties": 1, "additionalProperties": False,
            "properties": {
                "about": {"type": "string", "minLength": 1, "maxLength": MAX_ABOUT},
                "description": {"type": "string", "minLength": 1, "maxLength": MAX_DESCRIPTION},
                "email": {"type": "string", "format": "email", "maxLength": MAX_EMAIL},
                "websites": {"type": "array", "maxItems": MAX_WEBSITES, "items": {
                    "type": "string", "format": "uri", "maxLength": MAX_WEBSITE}},
                "picture": {"type": "string", "contentEncoding": "base64",
                            "description": "JPEG or PNG, at most 5 MB decoded; a "
                                           "data:...;base64, prefix is allowed"}}}
    unknown = {404: ("Instance not configured", "unknown_instance")}
    return {"/admin/instances/{id}/profile": {
        **_admin("get", "get_profile", "A gateway number's business profile", view,
                 parameters=[instance], errors=unknown),
        **_admin("put", "set_profile", "Set a gateway number's business profile and apply it",
                 view, parameters=[instance], body=body,
                 description="Replaces the config's [instances.profile] until the process "
                             "stops, and applies it now through the provider (Meta: picture "
                             "by resumable upload, then the business profile; WAHA: about and "
                             "picture; sandbox: recorded). A provider's refusal is answered "
                             "200 with `state.status: failed` and its error.",
                 errors={**unknown, 400: ("Bad profile or body",
                                          f"invalid_profile, {_BAD_BODY}"),
                         413: ("Request body over 8 MB", "payload_too_large")}),
    }}


def _delivery_paths() -> dict[str, Any]:
    limit = _ref("parameters", "Limit")
    delivery_id = _path("id", "Delivery id (also the webhook-id header sent)")
    subscriber = _query("subscriber", "Only this subscriber id (at most 200 characters)",
                        {"type": "string", "maxLength": 200})
    endpoint = _query("endpoint", "Only this endpoint key (at most 200 characters)",
                      {"type": "string", "maxLength": 200})
    too_long = "invalid_subscriber, invalid_endpoint (over 200 characters)"
    unknown = ("No such delivery", "unknown_delivery")
    one = _json("The delivery", _object({"delivery": _ref("schemas", "Delivery")}))
    return {
        "/admin/deliveries": _admin(
            "get", "list_deliveries", "List webhook deliveries, newest first",
            _json("Deliveries", _list_of("deliveries", "Delivery")), tag="deliveries",
            parameters=[_query("status", "Only this status",
                               {"enum": ["pending", "delivered", "failed"]}),
                        subscriber, endpoint, limit],
            errors={400: ("Bad query parameter", f"{_BAD_QUERY}, invalid_status, {too_long}")}),
        "/admin/deliveries/{id}": _admin(
            "get", "show_delivery", "One delivery with its payload and every attempt",
            _json("The delivery", _object({"delivery": {"allOf": [
                _ref("schemas", "Delivery"), _object({
                    "payload": {"description": "The event sent (JSON, or the raw text)"},
                    "attempt_log": {"type": "array",
                                    "items": _ref("schemas", "Attempt")}})]}})),
            tag="deliveries", parameters=[delivery_id], errors={404: unknown}),
        "/admin/deliveries/{id}/retry": _admin(
            "post", "retry_delivery", "Queue a delivery again now (same webhook-id)", one,
            tag="deliveries", parameters=[delivery_id],
            errors={404: unknown, 409: ("The delivery is already queued",
                                        "already_pending")}),
        "/admin/deliveries/replay": _admin(
            "post", "replay_deliveries", "Queue again every failed delivery since a time",
            _json("How many were queued again", _object({
                "replayed": {"type": "integer", "minimum": 0},
                "since": {"type": "string", "format": "date-time"}})),
            tag="deliveries",
            parameters=[_query("since", "ISO 8601 (a date, or a time; UTC unless it says) "
                                        "or epoch seconds, 1970 to 9999",
                               {"type": "string", "examples": ["2026-11-01T10:00:00Z",
                                                               "1793527200"]},
                               required=True), subscriber, endpoint],
            errors={400: ("Bad query parameter", f"missing_since, invalid_since, {too_long}")}),
        "/admin/endpoints": _admin(
            "get", "list_endpoints", "Every webhook endpoint: configured, failing, disabled",
            _json("Endpoints, never a secret", _list_of("endpoints", "Endpoint")),
            tag="deliveries"),
        "/admin/endpoints/{key}/enable": _admin(
            "post", "enable_endpoint", "Enable a disabled webhook endpoint again",
            _json("How many endpoint records were enabled", _object({
                "key": {"type": "string"}, "enabled": {"type": "integer", "minimum": 0}})),
            tag="deliveries",
            parameters=[_path("key", "Endpoint key (the first 64 characters count)"),
                        _query("subscriber", "Only this subscriber's endpoint",
                               {"type": "string", "maxLength": 200})],
            errors={400: ("Bad query parameter", "invalid_subscriber (over 200 characters)"),
                    404: ("No such endpoint", "unknown_endpoint")}),
    }


def _account(method: str, operation_id: str, summary: str, ok: dict[str, Any], *,
             parameters: list[dict[str, Any]] | None = None,
             errors: dict[int, tuple[str, str]] | None = None,
             description: str | None = None) -> dict[str, Any]:
    """A self-service operation: the send API's credentials, 401 and 474 always possible."""
    responses: dict[str, Any] = {"200": ok, "401": _error(*_ERRORS[401]),
                                 "474": _error("Invalid CLIENT ID / secret (and, for an "
                                               "action, a subscription that is not active)",
                                               "invalid_credentials, subscription_expired, "
                                               "subscription_not_started")}
    for code, (why, slugs) in sorted((errors or {}).items()):
        responses[str(code)] = _error(why, slugs)
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary,
                                 "tags": ["account"],
                                 "security": [{"ClientId": [], "ClientSecret": []}],
                                 "parameters": parameters or [], "responses": responses}
    if description:
        operation["description"] = description
    return {method: operation}


def _account_paths() -> dict[str, Any]:
    limit = _ref("parameters", "Limit")
    delivery_id = _path("id", "Delivery id (also the webhook-id header sent)")
    unknown = ("No such delivery among this subscriber's", "unknown_delivery")
    one = _json("The delivery", _object({"delivery": _ref("schemas", "Delivery")}))
    date_time = {"type": ["string", "null"], "format": "date-time"}
    count = {"type": "integer", "minimum": 0}
    return {
        "/v3/account": _account(
            "get", "account", "Own plan, expiry, quota in the running period, recipients",
            _json("The account", _object({
                "subscriber": {"type": "string"}, "plan": {"type": "string"},
                "state": {"enum": ["active", "expired", "not_started"]},
                "expires": {"type": ["string", "null"], "format": "date",
                            "description": "The first day it no longer works; null: "
                                           "open-ended"},
                "quota": _object({"limit": count, "used": count,
                                  "period_started_at": date_time, "resets_at": date_time}),
                "recipients": _object({"limit": count, "used": count})})),
            description="Open to a subscription that ended, so its holder can see why "
                        "sends are refused."),
        "/v3/account/messages": _account(
            "get", "account_messages", "Own sent messages, newest first",
            _json("Messages", _list_of("messages", "Message")),
            parameters=[_query("status", "Only this status",
                               {"enum": ["queued", "sent", "delivered", "read", "failed"]}),
                        _query("error_code", "Only failures with this provider error code",
                               {"type": "integer"}), limit],
            errors={400: ("Bad query parameter", f"{_BAD_QUERY}, invalid_status")}),
        "/v3/account/deliveries": _account(
            "get", "account_deliveries", "Own webhook deliveries, newest first",
            _json("Deliveries", _list_of("deliveries", "Delivery")),
            parameters=[_query("status", "Only this status",
                               {"enum": ["pending", "delivered", "failed"]}), limit],
            errors={400: ("Bad query parameter", f"{_BAD_QUERY}, invalid_status")}),
        "/v3/account/deliveries/{id}": _account(
            "get", "account_delivery", "One own delivery with its payload and every attempt",
            _json("The delivery", _object({"delivery": {"allOf": [
                _ref("schemas", "Delivery"), _object({
                    "payload": {"description": "The event sent (JSON, or the raw text)"},
                    "attempt_log": {"type": "array",
                                    "items": _ref("schemas", "Attempt")}})]}})),
            parameters=[delivery_id], errors={404: unknown}),
        "/v3/account/deliveries/{id}/retry": _account(
            "post", "account_retry_delivery", "Queue an own delivery again now (same "
                                              "webhook-id)", one, parameters=[delivery_id],
            errors={404: unknown, 409: ("The delivery is already queued", "already_pending")}),
        "/v3/account/deliveries/replay": _account(
            "post", "account_replay_deliveries", "Queue again every own failed delivery "
                                                 "since a time",
            _json("How many were queued again", _object({
                "replayed": count, "since": {"type": "string", "format": "date-time"}})),
            parameters=[_query("since", "ISO 8601 (a date, or a time; UTC unless it says) "
                                        "or epoch seconds, 1970 to 9999",
                               {"type": "string", "examples": ["2026-11-01T10:00:00Z"]},
                               required=True),
                        _query("endpoint", "Only this endpoint key",
                               {"type": "string", "maxLength": 200})],
            errors={400: ("Bad query parameter", "missing_since, invalid_since, "
                                                 "invalid_endpoint")}),
        "/v3/account/webhooks": _account(
            "get", "account_webhooks", "Own webhook endpoints and their health",
            _json("Endpoints, never a secret", _list_of("endpoints", "Endpoint"))),
        "/v3/account/webhooks/test": _account(
            "post", "account_webhook_test", "Send a `test` event to each own endpoint",
            _json("The deliveries queued, one per endpoint", _object({"queued": {
                "type": "array", "items": _object({
                    "id": {"type": "string"},
                    "endpoint": _object({"key": {"type": "string"},
                                         "url": {"type": "string"}})})}})),
            description="Queued and retried like any other delivery, signed as the "
                        "endpoint's format says; it reaches the endpoint whatever events "
                        "it subscribes to.",
            errors={409: ("No webhook endpoint is configured", "no_webhooks")}),
    }


def _sandbox_paths() -> dict[str, Any]:
    return {
        "/sandbox/inbound": _admin(
            "post", "sandbox_inbound", "Inject an inbound text message on a sandbox instance",
            _json("Handled as a message from the user would be; `duplicate` when the id was "
                  "seen before", _object({"id": {"type": "string"},
                                          "duplicate": {"type": "boolean"}})),
            tag="sandbox",
            body={"type": "object", "required": ["from", "text"], "properties": {
                "instance": {"type": "integer", "default": 1},
                "from": {"type": ["string", "integer"], "examples": ["+34600000001"],
                         "description": "Sender, with country code"},
                "text": {"type": "string", "minLength": 1, "maxLength": sandbox.MAX_TEXT},
                "id": {"type": "string", "maxLength": 200,
                       "description": "Provider message id; generated when absent"},
                "name": {"type": "string", "description": "Sender's profile name"},
                "group": {"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "string", "minLength": 1, "maxLength": 200},
                    "name": {"type": "string", "maxLength": 200}}}}},
            errors={400: ("Bad body, or the instance is not a sandbox",
                          f"{_BAD_BODY}, invalid_instance, not_sandbox, invalid_from, "
                          "invalid_text, text_too_long, invalid_id, invalid_group, "
                          "invalid_name"),
                    404: ("Instance not configured", "unknown_instance"),
                    413: _TOO_LARGE}),
        "/sandbox/status": _admin(
            "post", "sandbox_status", "Report a provider status for a sandbox message",
            _json("Handled as a provider's status would be: `applied` is false when the "
                  "message already has this status or a later one (a status never moves a "
                  "message backwards), and `message` shows the status it has",
                  _object({"applied": {"type": "boolean"},
                           "message": _ref("schemas", "OutboxMessage")})),
            tag="sandbox",
            description="Moves the message through the same path a Meta status takes: its "
                        "status, as `GET /v3/whatsapp/messages/{id}` shows it, and a "
                        "`message.status` webhook for the subscriber that sent it.",
            body={"type": "object", "required": ["id", "status"], "properties": {
                "id": {"type": "string", "minLength": 1, "maxLength": 200,
                       "description": "The message's id, as the send API or the outbox "
                                      "gives it"},
                "status": {"enum": list(STATUSES)},
                "error": {"type": "object", "description": "With status failed only",
                          "properties": {
                              "code": {"type": "integer", "minimum": 0,
                                       "maximum": sandbox.MAX_ERROR_CODE},
                              "title": {"type": "string",
                                        "maxLength": sandbox.MAX_ERROR_TITLE}}}}},
            errors={400: ("Bad body, or the message did not go out on a sandbox instance",
                          f"{_BAD_BODY}, invalid_id, invalid_status, invalid_error, "
                          "not_sandbox"),
                    404: ("No message with this id", "message_not_found"),
                    409: ("The sandbox has not sent the message yet", "not_sent_yet"),
                    413: _TOO_LARGE}),
        "/sandbox/outbox": _admin(
            "get", "sandbox_outbox", "Messages sent through the sandbox, newest first",
            _json("Messages", _list_of("messages", "OutboxMessage")), tag="sandbox",
            parameters=[_query("instance", "Only this instance id", {"type": "integer"}),
                        _query("to", "Only to this phone number", {"type": "string"}),
                        _ref("parameters", "Limit")],
            errors={400: ("Bad query parameter", f"{_BAD_QUERY}, {_BAD_NUMBER}")}),
    }


def _operation_paths() -> dict[str, Any]:
    return {
        "/healthz": _open("healthz", "Liveness: the process answers", {
            "200": _json("Alive", _object({"status": {"const": "ok"}}))}),
        "/readyz": _open(
            "readyz", "Readiness: the store answers, every worker runs, every provider "
            "can send (a WAHA account is linked)", {
                "200": _json("Ready; `details.profiles` (when a profile is configured) "
                             "says how each number's business profile was applied, and "
                             "`details.profile_problems` those that were not: never a "
                             "reason to be unready", {
                                 **_object({"status": {"const": "ready"},
                                            "config_generation": {"type": "integer"}}),
                                 "properties": {
                                     "status": {"const": "ready"},
                                     "config_generation": {"type": "integer"},
                                     "details": {"type": "object", "properties": {
                                         "profiles": {"type": "object"},
                                         "profile_problems": {"type": "array", "items": {
                                             "type": "string"}}}}}}),
                "503": _json("Not ready, with the reasons", _object({
                    "status": {"const": "unavailable"},
                    "reasons": {"type": "array", "items": {"type": "string"}},
                    "config_generation": {"type": "integer"}}))}),
        "/metrics": _open(
            "metrics", "Prometheus metrics", {"200": {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}}}},
            description="Open like /healthz; labels hold route templates, provider names, "
                        "subscriber ids, locales and outcome codes, never a secret, a phone "
                        "number or a message body. Keep it private behind a proxy if "
                        "subscriber ids must not be seen."),
        "/openapi.json": _open("openapi", "This document", {
            "200": _json("OpenAPI 3.1", {"type": "object"})}),
    }


_ADMIN_SCHEMAS: dict[str, Any] = {
    "Registration": _object({
        "instance": {"type": "integer"}, "number": {"type": "string"},
        "locale": {"type": "string"}, "status": {"enum": ["active", "opted_out"]},
        "keyword_subscriber": {"type": ["string", "null"]},
        "registered_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "opted_out_at": {"type": ["string", "null"], "format": "date-time",
                         "description": "When it was opted out (the first STOP or the "
                                        "admin's opt-out); null while active"},
        "user_id": {"type": ["string", "null"],
                    "description": "The provider's business-scoped user id, when known; "
                                   "`number` is that id for a user known by nothing else"},
        "window_open_until": {"type": ["string", "null"], "format": "date-time",
                              "description": "When the 24-hour customer-service window "
                                             "closes (24 hours after the user's last "
                                             "message)"}}),
    "Cost": _object({
        "subscriber": {"type": ["string", "null"],
                       "description": "null: the gateway's own replies"},
        "category": {"type": "string", "examples": ["utility", "marketing", "service"]},
        "billable": {"type": ["boolean", "null"]},
        "messages": {"type": "integer"}}),
    "LoggedMessage": _object({
        "direction": {"enum": ["in", "out"]}, "id": {"type": "string"},
        "instance": {"type": "integer"}, "number": {"type": ["string", "null"]},
        "group_id": {"type": ["string", "null"]}, "type": {"type": "string"},
        "text": {"type": ["string", "null"]}, "status": {"type": ["string", "null"]},
        "at": {"type": "string", "format": "date-time"}}),
    "OutboxMessage": _object({
        "id": {"type": "string"}, "instance": {"type": "integer"},
        "to": {"type": ["string", "null"]},
        "group": {"type": ["object", "null"], "properties": {
            "id": {"type": "string"}, "name": {"type": ["string", "null"]}}},
        "type": {"enum": list(KINDS)}, "text": {"type": ["string", "null"]},
        "caption": {"type": ["string", "null"]}, "filename": {"type": ["string", "null"]},
        "status": {"type": "string"},
        "error": {"type": ["object", "null"], "description": "Only when failed",
                  "properties": {"code": {"type": ["integer", "null"]},
                                 "title": {"type": ["string", "null"]}}},
        "subscriber": {"type": ["string", "null"]},
        "template": {"type": ["object", "null"], "description": "The template it goes out "
                     "as: name, language, category, parameters, header"},
        "pricing": {"type": ["object", "null"], "description": "What the provider charged "
                    "it as, once a status told",
                    "properties": {"category": {"type": "string"},
                                   "billable": {"type": ["boolean", "null"]}}},
        "created_at": {"type": "string", "format": "date-time"}}),
    "Delivery": _object({
        "id": {"type": "string"}, "subscriber": {"type": "string"},
        "endpoint": _object({"key": {"type": "string"}, "url": {"type": "string"},
                             "format": {"type": "string"}}),
        "type": {"type": "string", "description": "Event type"},
        "status": {"enum": ["pending", "delivered", "failed"]},
        "attempts": {"type": "integer"},
        "next_attempt_at": {"type": ["string", "null"], "format": "date-time",
                            "description": "Only while pending"},
        "last_status_code": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "delivered_at": {"type": ["string", "null"], "format": "date-time"}}),
    "Attempt": _object({
        "at": {"type": "string", "format": "date-time"},
        "outcome": {"enum": ["delivered", "retry", "failed", "disabled", "refused"]},
        "status_code": {"type": ["integer", "null"]},
        "latency_ms": {"type": ["number", "null"]},
        "response_body": {"type": ["string", "null"]}, "error": {"type": ["string", "null"]}}),
    "Endpoint": _object({
        "subscriber": {"type": "string"}, "key": {"type": "string"},
        "url": {"type": ["string", "null"]}, "format": {"type": ["string", "null"]},
        "configured": {"type": "boolean", "description": "In the config in force"},
        "status": {"enum": ["ok", "failing", "disabled"]},
        "failing_since": {"type": ["string", "null"], "format": "date-time"},
        "last_success_at": {"type": ["string", "null"], "format": "date-time"},
        "last_failure_at": {"type": ["string", "null"], "format": "date-time"},
        "disabled_at": {"type": ["string", "null"], "format": "date-time"},
        "disabled_reason": {"type": ["string", "null"]},
        "pending": {"type": "integer"}, "failed": {"type": "integer"}}),
}


def _template_operation() -> dict[str, Any]:
    media = {"type": "string", "contentEncoding": "base64"}
    body = {"type": "object", "required": ["number", "template"], "properties": {
        "number": _PROPERTIES["number"],
        "template": {"type": "string", "examples": ["order_ready"],
                     "description": "A template configured under [[templates]] for this "
                                    "instance (and subscriber)"},
        "language": {"type": "string", "examples": ["es_MX"],
                     "description": "One of the template's configured language codes; by "
                                    "default the one for the user's registration locale"},
        "parameters": {"oneOf": [
            {"type": "array", "items": {"type": ["string", "number"]}},
            {"type": "object", "additionalProperties": {"type": ["string", "number"]}}],
            "description": "Body parameters: a list for {{1}}..{{n}}, an object for named "
                           "ones; exactly as many as configured"},
        "header": {"type": "object", "description": "The media of a template with a media "
                                                    "header",
                   "properties": {"image": media, "document": media,
                                  "filename": _PROPERTIES["filename"]}}}}
    return {"post": {
        "operationId": "send_single_template",
        "summary": "Send an approved template message to a number",
        "description": "Goes through whatever the 24-hour window (templates are what reach "
                       "a user outside it); counts against the quota like any send.",
        "tags": ["send"],
        "parameters": [{"$ref": "#/components/parameters/Instance"}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": _responses([400, 401, 403, 404, 408, 413, 415, 469, 470, 471, 472, 473,
                                 474], {
            "description": "Queued; a worker sends it",
            "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Queued"}}}}),
    }}


def build_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for audience in ("single", "group"):
        for kind in KINDS:
            paths[send_path(audience, kind)] = _send_operation(audience == "group", kind)
    paths[TEMPLATE_PATH] = _template_operation()
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
    for part in (_account_paths(), _admin_paths(), _profile_paths(), _delivery_paths(),
                 _sandbox_paths(),
                 _operation_paths()):
        paths.update(part)
    return {
        "openapi": "3.1.0",
        "info": {"title": "wagate API (send API WhatsMate v3 compatible)", "version": "3",
                 "description": "Send WhatsApp messages to registered users and groups "
                                "(`send`, X-WM-CLIENT-ID/SECRET headers) and check one's "
                                "own account (`account`, the same headers); administer "
                                "registrations, messages, config and webhook deliveries "
                                "(`admin`, `deliveries`, Bearer admin token); drive the "
                                "sandbox transport (`sandbox`); probe the service "
                                "(`operations`, open)."},
        "security": [{"ClientId": [], "ClientSecret": []}],
        "tags": [{"name": "send", "description": "The subscriber send API"},
                 {"name": "account", "description": "A subscriber's own account, messages "
                                                    "and webhook deliveries"},
                 {"name": "admin", "description": "Registrations, message log, config"},
                 {"name": "deliveries", "description": "Webhook deliveries and endpoints"},
                 {"name": "sandbox", "description": "The sandbox transport over HTTP"},
                 {"name": "operations", "description": "Liveness, readiness, metrics"}],
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
            "schemas": {
                **_ADMIN_SCHEMAS,
                "Queued": {"type": "object", "required": ["status", "id"], "properties": {
                    "status": {"const": "queued"}, "id": {"type": "string", "format": "uuid"}}},
                "Error": {"type": "object", "required": ["error_message", "error"],
                          "properties": {"error_message": {"type": "string"},
                                         "error": {"type": "string"}}},
                "QuotaError": {"allOf": [{"$ref": "#/components/schemas/Error"}, {
                    "type": "object", "required": ["reset_at", "limit"], "properties": {
                        "reset_at": {"type": "string", "format": "date-time"},
                        "limit": {"type": "integer"}}}]},
                "WindowError": {"allOf": [{"$ref": "#/components/schemas/Error"}, {
                    "type": "object", "required": ["window_closed_at"], "properties": {
                        "window_closed_at": {"type": ["string", "null"], "format": "date-time",
                                             "description": "null: the user never wrote"}}}]},
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
                    "updated_at": {"type": "string", "format": "date-time"},
                    "history": {
                        "type": "array",
                        "description": "Only in `GET /v3/whatsapp/messages/{id}`: each "
                                       "recorded status change, oldest first (`retry`: an "
                                       "attempt failed and will be retried; `error` says "
                                       "why). A provider status is timed by the "
                                       "provider's timestamp when it gave one.",
                        "items": {"type": "object", "properties": {
                            "at": {"type": "string", "format": "date-time"},
                            "status": {"enum": ["queued", "sent", "delivered", "read",
                                                "failed", "retry"]},
                            "error": {"type": ["object", "null"], "properties": {
                                "code": {"type": ["integer", "null"]},
                                "title": {"type": ["string", "null"]}}}}}}}},
            },
        },
    }


DOCUMENT = build_document()


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
