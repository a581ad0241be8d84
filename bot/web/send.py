"""The subscriber send API, WhatsMate v3 compatible (SPEC §4).

Eight POST endpoints (single or group; text, image, document, url) and the
status of a sent message. Lenient where real WhatsMate clients are sloppy
(numbers in any common form, JSON whatever the Content-Type or the same fields
form-encoded, keys with stray white space, `caption: null`), strict about
everything else. A request is
checked in the order credentials (401/474) -> instance (404) -> plan feature
(403) -> body (400/413/470/471) -> the store's one transaction (472, unknown
group 404, 473, 469), so a refused request never touches quota or queue.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.config import Config, InstanceConfig, SubscriberConfig
from bot.content import (
    MAX_CAPTION,
    MAX_TEXT,
    ContentError,
    Media,
    clean_filename,
    decode_document,
    decode_image,
    emojize,
)
from bot.effects import OutboundDraft
from bot.numbers import to_e164, written_international
from bot.providers.base import Capabilities
from bot.store.models import OutboundRow, SendLimits, SendOutcome
from bot.subscribers import Subscription, may_use, subscription_on
from bot.templates import TemplateConfig, TemplateUse, header_for, parameter_text
from bot.userids import is_user_id
from bot.web.auth import require_subscriber
from bot.web.errors import ApiError, fail, parse_form_pairs, parse_json_object, read_body
from bot.web.keys import clock_key, metrics_key, outbound_worker_key, providers_key, store_key
from bot.web.row_json import iso
from bot.web.snapshot import snapshot_of
from bot.window import send_fit

log = logging.getLogger("wagate.send")

routes = web.RouteTableDef()

# The authenticated subscriber's id, for the per-subscriber send metrics.
subscriber_request_key = web.RequestKey("send_subscriber", str)

KINDS = ("text", "image", "document", "url")
QUOTA_PERIOD = 24 * 3600.0
MAX_URL = 2048
MAX_GROUP_NAME = 200


def send_path(audience: str, kind: str) -> str:
    return f"/v3/whatsapp/{audience}/{kind}/message/{{n}}"


# ---- credentials, instance, plan


def require_active(sub: SubscriberConfig, config: Config, today: dt.date) -> Subscription:
    subscription = subscription_on(sub, config.plans, today)
    if subscription.state == "expired":
        ended = subscription.ends.isoformat() if subscription.ends else "?"
        fail(474, "subscription_expired", f"the subscription ended on {ended}")
    if subscription.state == "not_started":
        fail(474, "subscription_not_started",
             f"the subscription starts on {sub.since.isoformat()}")
    return subscription


def _instance(request: web.Request, config: Config, sub: SubscriberConfig) -> InstanceConfig:
    raw = request.match_info["n"]
    instance = config.instances.get(int(raw)) if raw.isascii() and raw.isdigit() else None
    # Another subscriber's number answers exactly like a missing one: nothing leaks.
    if instance is None or not may_use(sub, instance):
        fail(404, "unknown_instance",
             f"instance {raw[:20]} does not exist or is not available to this subscription")
    return instance


# ---- the body


FORM = "application/x-www-form-urlencoded"
# Form decoding reads '+' as a space. A client that does not percent-encode '+'
# (curl -d, a hand-built string) would lose it from base64, which the decoder
# would then skip as white space, and from a number's leading '+'. Neither can
# hold a space, so a space there was a '+'.
_BASE64_FIELDS = ("image", "document")
_NUMBER_FIELDS = ("number", "group_admin")


async def _body_fields(request: web.Request) -> dict[str, Any]:
    """The body's fields: form-encoded when the Content-Type says so (unless
    the body is plainly JSON, as `curl -d '{...}'` sends), else JSON."""
    raw = await read_body(request, request.client_max_size)
    if request.content_type != FORM or raw.lstrip()[:1] in (b"{", b"[", b""):
        return _fields(parse_json_object(raw).items())
    fields = _fields(parse_form_pairs(raw))
    for name in _BASE64_FIELDS:
        if isinstance(value := fields.get(name), str):
            fields[name] = value.replace(" ", "+")
    for name in _NUMBER_FIELDS:
        if isinstance(value := fields.get(name), str) and value.startswith(" "):
            fields[name] = "+" + value.lstrip(" ")
    return fields


def _fields(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Keys as clients mean them: stray white space trimmed, case ignored."""
    fields: dict[str, Any] = {}
    for key, value in pairs:
        name = key.strip().lower()
        if name in fields:
            fail(400, "duplicate_field", f"field {name!r} is given twice")
        fields[name] = value
    return fields


def _string(fields: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = fields.get(name)
    if value is None:
        if required:
            fail(400, "missing_field", f"{name} is required")
        return None
    if not isinstance(value, str):
        fail(400, "invalid_field", f"{name} must be a string")
    return value


def _text(fields: dict[str, Any]) -> str:
    text = _string(fields, "message") or ""
    if not text.strip():
        fail(400, "invalid_field", "message must not be empty")
    if len(text) > MAX_TEXT:
        fail(400, "text_too_long", f"message is {len(text)} characters; the limit is {MAX_TEXT}")
    return emojize(text)


def _caption(fields: dict[str, Any]) -> str | None:
    caption = _string(fields, "caption", required=False)
    if caption is None or not caption.strip():
        return None  # `caption: null` and "" both mean no caption
    if len(caption) > MAX_CAPTION:
        fail(400, "caption_too_long",
             f"caption is {len(caption)} characters; the limit is {MAX_CAPTION}")
    return emojize(caption)


def _url(fields: dict[str, Any]) -> str:
    url = (_string(fields, "url") or "").strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. "http://[::1" or "http://[zz]/": a bracketed host that is no IP
        host = None
    if (not host or parts.scheme.lower() not in ("http", "https")
            or any(c.isspace() for c in url) or len(url) > MAX_URL):
        fail(400, "invalid_url", "url must be an http:// or https:// address without spaces, "
             f"at most {MAX_URL} characters")
    return url


def _media(fields: dict[str, Any], kind: str, instance: InstanceConfig,
           caps: Capabilities) -> Media:
    raw = _string(fields, kind) or ""
    try:
        media = decode_image(raw) if kind == "image" else decode_document(raw)
    except ContentError as exc:
        fail(exc.status, exc.slug, exc.message)
    if kind == "image" and caps.image_types is not None and media.mime not in caps.image_types:
        fail(400, "unsupported_image", f"instance {instance.id} sends through "
             f"{caps.image_refusal}")
    return media


def _filename(fields: dict[str, Any]) -> str:
    try:
        return clean_filename(_string(fields, "filename") or "")
    except ContentError as exc:
        fail(exc.status, exc.slug, exc.message)


def _number(fields: dict[str, Any]) -> str:
    """E.164, or a provider's user id ("US.13491208655302741918") as given."""
    raw = fields.get("number")
    if raw is None or raw == "":
        fail(400, "missing_field", "number is required")
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        fail(400, "invalid_field", "number must be a string")
    if is_user_id(raw.strip() if isinstance(raw, str) else raw):
        return str(raw).strip()
    number = to_e164(raw, typed=True)
    if number is None and not written_international(raw):
        fail(471, "invalid_number", f"{str(raw)[:40]!r} lacks a country code: write the number "
             "in international form, country code first, like +34600000001")
    if number is None:
        fail(471, "invalid_number", f"{str(raw)[:40]!r} is not a possible phone number with "
             "country code, like +34600000001")
    return number


def _group(fields: dict[str, Any]) -> str:
    name = (_string(fields, "group_name") or "").strip()
    if not name or len(name) > MAX_GROUP_NAME:
        fail(400, "invalid_field", f"group_name must be 1 to {MAX_GROUP_NAME} characters")
    # WhatsMate clients send the group admin's number; a group here is known by
    # its name on the instance, so it is only checked to be a number, not used.
    admin = fields.get("group_admin")
    if admin not in (None, "") and (not isinstance(admin, str | int) or isinstance(admin, bool)
                                    or to_e164(admin, typed=True) is None):
        fail(400, "invalid_field", "group_admin must be a phone number with country code")
    return name


def _draft(fields: dict[str, Any], *, group: bool, kind: str, instance: InstanceConfig,
           caps: Capabilities, sub: SubscriberConfig) -> tuple[OutboundDraft, str | None]:
    """The message to queue, and the group name to resolve in the store."""
    group_name = _group(fields) if group else None
    number = None if group else _number(fields)
    text = caption = filename = None
    media: Media | None = None
    if kind == "text":
        text = _text(fields)
    elif kind == "url":
        text = _url(fields)
    else:
        caption = _caption(fields)
        if kind == "document":
            filename = _filename(fields)
        media = _media(fields, kind, instance, caps)
    draft = OutboundDraft(instance_id=instance.id, to=number, type=kind, text=text,
                          caption=caption, filename=filename,
                          media=media.data if media else None,
                          mime=media.mime if media else None, subscriber_id=sub.id)
    return draft, group_name


# ---- the store's answer


def _refusal(outcome: SendOutcome, draft: OutboundDraft, instance: InstanceConfig,
             group_name: str | None, now: float) -> web.Response:
    if outcome.status == "quota_exceeded":
        assert outcome.reset_at is not None
        wait = max(1, math.ceil(outcome.reset_at - now))
        reset = iso(outcome.reset_at)
        return web.json_response(
            {"error_message": f"daily quota of {outcome.limit} messages used up; it resets at "
                              f"{reset} (in {wait} s)",
             "error": "quota_exceeded", "reset_at": reset, "limit": outcome.limit},
            status=469, headers={"Retry-After": str(wait)})
    if outcome.status == "not_registered":
        fail(472, "not_registered",
             f"{draft.to} has not registered with gateway number {instance.number} "
             f"(instance {instance.id}) or has opted out; they must send Hi to it first")
    if outcome.status == "unknown_group":
        fail(404, "unknown_group",
             f"no group named {group_name!r} is registered on instance {instance.id}: add the "
             f"gateway number {instance.number} to the group and say Hi there")
    if outcome.status == "recipient_limit":
        fail(473, "recipient_limit",
             f"the plan's limit of {outcome.limit} recipients in total is reached")
    if outcome.status == "outside_window":
        closed = iso(outcome.window_closed_at)
        since = f"since {closed}" if closed else "(they have not written yet)"
        header = header_for(draft.type)
        with_header = "" if header == "none" else f' with header = "{header}"'
        return web.json_response(
            {"error_message": f"{draft.to} last wrote more than 24 hours ago: the "
                              f"customer-service window of instance {instance.id} is closed "
                              f"{since}, and only an approved template reaches them. Configure"
                              f' a [[templates]] entry with use = "notification"{with_header}'
                              " for this instance, or send one with the template endpoint",
             "error": "outside_window", "window_closed_at": closed}, status=475)
    raise RuntimeError(f"unknown send outcome {outcome.status!r}")


# ---- routes


async def _send(request: web.Request, *, group: bool, kind: str) -> web.Response:
    snap = snapshot_of(request)
    config = snap.config
    clock = request.app[clock_key]
    sub = require_subscriber(request, config)
    request[subscriber_request_key] = sub.id
    subscription = require_active(sub, config, clock.today())
    instance = _instance(request, config, sub)
    plan = subscription.plan
    for feature in (kind, "group") if group else (kind,):
        if feature not in plan.features:
            fail(403, "feature_not_in_plan",
                 f"the {plan.name} plan does not include {feature} messages")
    caps = request.app[providers_key][instance.provider].caps
    if (group and not caps.groups) or (kind in ("image", "document")
                                       and kind not in caps.media_kinds):
        fail(403, "not_supported_by_provider", f"instance {instance.id} sends through "
             f"{instance.provider}, which cannot send {'group' if group else kind} messages")
    fields = await _body_fields(request)
    draft, group_name = _draft(fields, group=group, kind=kind, instance=instance, caps=caps,
                               sub=sub)
    limits = SendLimits(messages_per_period=plan.messages_per_day,
                        max_recipients=plan.max_recipients, period_seconds=QUOTA_PERIOD)
    return await _accept(request, config, draft, group_name, limits, instance)


async def _accept(request: web.Request, config: Config, draft: OutboundDraft,
                  group_name: str | None, limits: SendLimits,
                  instance: InstanceConfig) -> web.Response:
    now = request.app[clock_key].now()
    outcome = await request.app[store_key].accept_send(
        draft, group_name=group_name, limits=limits, now=now,
        fit=send_fit(config, draft, now))
    if not outcome.queued:
        return _refusal(outcome, draft, instance, group_name, now)
    request.app[outbound_worker_key].notify()
    return web.json_response({"status": "queued", "id": outcome.message_id})


# ---- the template send

TEMPLATE_PATH = "/v3/whatsapp/single/template/message/{n}"


def _template_parameters(fields: dict[str, Any],
                         template: TemplateConfig) -> list[str] | dict[str, str]:
    raw = fields.get("parameters", [])
    if raw is None:
        raw = []
    expected = template.parameter_count
    named = bool(template.parameter_names)
    if isinstance(raw, list):
        if named and raw:
            fail(400, "invalid_parameters", f"template {template.name!r} takes named "
                 f"parameters: {', '.join(template.parameter_names)}")
        values = raw
    elif isinstance(raw, dict):
        if not named:
            fail(400, "invalid_parameters",
                 f"template {template.name!r} takes {expected} parameters as a list")
        unknown = sorted(set(raw) - set(template.parameter_names))
        missing = [n for n in template.parameter_names if n not in raw]
        if unknown or missing:
            fail(400, "parameter_count", f"template {template.name!r} takes the parameters "
                 f"{', '.join(template.parameter_names)}"
                 + (f"; unknown: {', '.join(map(str, unknown))[:200]}" if unknown else "")
                 + (f"; missing: {', '.join(missing)}" if missing else ""))
        values = [raw[n] for n in template.parameter_names]
    else:
        fail(400, "invalid_parameters", "parameters must be a list or an object")
    if len(values) != expected:
        fail(400, "parameter_count", f"template {template.name!r} takes {expected} "
             f"parameter{'s' if expected != 1 else ''}; {len(values)} given")
    texts: list[str] = []
    for value in values:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            fail(400, "invalid_parameters", "each parameter must be a string or a number")
        text = parameter_text(emojize(str(value)))
        if not text:
            fail(400, "invalid_parameters", "a parameter must not be empty")
        texts.append(text)
    if named:
        return dict(zip(template.parameter_names, texts, strict=True))
    return texts


def _template_header(fields: dict[str, Any], template: TemplateConfig, instance: InstanceConfig,
                     caps: Capabilities) -> tuple[Media | None, str | None]:
    raw = fields.get("header")
    if template.header == "none":
        if raw not in (None, {}):
            fail(400, "invalid_header", f"template {template.name!r} has no media header")
        return None, None
    if not isinstance(raw, dict) or not isinstance(raw.get(template.header), str):
        fail(400, "invalid_header", f"template {template.name!r} needs "
             f'"header": {{"{template.header}": <base64>}}')
    header = _fields(raw.items())
    filename = _filename(header) if template.header == "document" else None
    return _media(header, template.header, instance, caps), filename


async def _send_template(request: web.Request) -> web.Response:
    config = snapshot_of(request).config
    sub = require_subscriber(request, config)
    request[subscriber_request_key] = sub.id
    subscription = require_active(sub, config, request.app[clock_key].today())
    instance = _instance(request, config, sub)
    caps = request.app[providers_key][instance.provider].caps
    if not caps.templates:
        fail(400, "templates_not_supported",
             f"instance {instance.id}'s provider ({instance.provider}) sends no templates")
    fields = await _body_fields(request)
    number = _number(fields)
    name = _string(fields, "template") or ""
    template = config.templates.named(instance.id, sub.id, name.strip())
    if template is None:
        fail(400, "unknown_template", f"no template named {name[:100]!r} is configured for "
             f"instance {instance.id}: add it under [[templates]]")
    language = _string(fields, "language", required=False)
    if language is not None and language not in template.languages.values():
        fail(400, "unknown_language", f"template {template.name!r} is configured in "
             f"{', '.join(sorted(set(template.languages.values())))}, not {language[:20]!r}")
    parameters = _template_parameters(fields, template)
    media, filename = _template_header(fields, template, instance, caps)
    kind = template.header if media is not None else "text"
    if kind not in subscription.plan.features:
        fail(403, "feature_not_in_plan",
             f"the {subscription.plan.name} plan does not include {kind} messages")
    use = TemplateUse(name=template.name, language=language, category=template.category,
                      parameters=parameters, header=template.header)
    shown = " ".join(parameters.values() if isinstance(parameters, dict) else parameters)
    draft = OutboundDraft(instance_id=instance.id, to=number, type=kind,
                          text=f"[{template.name}] {shown}".strip(), filename=filename,
                          media=media.data if media else None, mime=media.mime if media else None,
                          subscriber_id=sub.id, template=use.to_json())
    plan = subscription.plan
    limits = SendLimits(messages_per_period=plan.messages_per_day,
                        max_recipients=plan.max_recipients, period_seconds=QUOTA_PERIOD)
    return await _accept(request, config, draft, None, limits, instance)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _counted(send: Handler) -> Handler:
    """Count every send request by subscriber and outcome ("queued" or the status)."""
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            response = await send(request)
        except ApiError as exc:
            status = exc.status
            raise
        except web.HTTPException as exc:  # e.g. the body over the size limit
            status = exc.status
            raise
        except Exception:
            status = 500
            raise
        else:
            status = response.status
            return response
        finally:
            outcome = "queued" if status == 200 else str(status)
            request.app[metrics_key].sends.labels(
                request.get(subscriber_request_key, "unknown"), outcome).inc()
    return handler


def _endpoint(group: bool, kind: str) -> Handler:
    async def send(request: web.Request) -> web.Response:
        return await _send(request, group=group, kind=kind)
    send.__name__ = f"send_{'group' if group else 'single'}_{kind}"
    return _counted(send)


for _audience in ("single", "group"):
    for _kind in KINDS:
        routes.post(send_path(_audience, _kind))(_endpoint(_audience == "group", _kind))
routes.post(TEMPLATE_PATH)(_counted(_send_template))


def message_json(row: OutboundRow) -> dict[str, Any]:
    failed = row.status == "failed"
    return {"id": row.id, "status": "queued" if row.status == "sending" else row.status,
            "instance": row.instance_id, "type": row.type, "to": row.to,
            "group": row.group_name if row.group_id else None,
            "reason": row.error_title if failed else None,
            "error": {"code": row.error_code, "title": row.error_title} if failed else None,
            "created_at": iso(row.created_at), "updated_at": iso(row.updated_at)}


@routes.get("/v3/whatsapp/messages/{id}")
async def message_status(request: web.Request) -> web.Response:
    config = snapshot_of(request).config
    sub = require_subscriber(request, config)
    require_active(sub, config, request.app[clock_key].today())
    row = await request.app[store_key].get_outbound(request.match_info["id"][:100])
    # Only the sender sees a message: anyone else gets the same 404 as for no message.
    if row is None or row.subscriber_id != sub.id:
        fail(404, "message_not_found", "no message with this id was sent by this subscriber")
    history = await request.app[store_key].status_history(row.id)
    return web.json_response({**message_json(row), "history": [
        {"at": iso(e.at), "status": e.status,
         "error": None if e.error_code is None and e.error_title is None
         else {"code": e.error_code, "title": e.error_title}} for e in history]})
