"""The subscriber send API, WhatsMate v3 compatible (SPEC §4).

Eight POST endpoints (single or group; text, image, document, url), the
template send and the status of a sent message. The body is read leniently,
as real WhatsMate clients write it (bot/web/send_body.py); what to do with the
send is decided by the service (bot/services/sends.py). A request is checked
in the order credentials (401/474) -> instance (404) -> plan feature
(403) -> body (400/413/470/471) -> the store's one transaction (472, unknown
group 404, 473, 469), so a refused request never touches quota or queue.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal, NoReturn, get_args

from aiohttp import web

from bot.config import Config, InstanceConfig, PlanConfig, SubscriberConfig
from bot.content import Media, emojize
from bot.effects import OutboundDraft
from bot.providers.base import Capabilities
from bot.services.sends import missing_feature, provider_can_send
from bot.store.models import SendOutcome
from bot.subscribers import Subscription, may_use, subscription_on
from bot.templates import TemplateConfig, TemplateUse, header_for, parameter_text
from bot.web.auth import SUBSCRIBER_ERRORS, require_subscriber
from bot.web.catalog import Error
from bot.web.errors import (
    FORM_ERRORS,
    JSON_ERRORS,
    MULTIPART_ERRORS,
    READ_ERRORS,
    ApiError,
    fail,
)
from bot.web.keys import clock_key, metrics_key, providers_key, store_key
from bot.web.operations import (
    INSTANCE,
    ApiRoutes,
    Time,
    doc,
    json_response,
    path_param,
)
from bot.web.request_services import sends_service
from bot.web.row_json import Kind, Message, ProviderError, iso, iso_time
from bot.web.send_body import (
    CONTENT_READERS,
    ContentReader,
    UnsureNumber,
    fields_of,
    lacks_country_code,
    read_fields,
    read_filename,
    read_media,
    read_string,
    send_body,
    template_body,
    to_group,
    to_number,
)
from bot.web.snapshot import snapshot_of

log = logging.getLogger("wagate.send")

routes = ApiRoutes()

# The authenticated subscriber's id, for the per-subscriber send metrics.
subscriber_request_key = web.RequestKey("send_subscriber", str)

KINDS: tuple[str, ...] = get_args(Kind)


def send_path(audience: str, kind: str) -> str:
    return f"/v3/whatsapp/{audience}/{kind}/message/{{n}}"


# ---- credentials, instance, plan


def require_active(sub: SubscriberConfig, config: Config, today: dt.date) -> Subscription:
    subscription = subscription_on(sub, config.plans, today)
    if subscription.state == "expired":
        ended = subscription.ends.isoformat() if subscription.ends else "?"
        fail(Error.SUBSCRIPTION_EXPIRED, f"the subscription ended on {ended}")
    if subscription.state == "not_started":
        fail(Error.SUBSCRIPTION_NOT_STARTED,
             f"the subscription starts on {sub.since.isoformat()}")
    if subscription.state == "suspended":
        fail(Error.SUBSCRIPTION_SUSPENDED, "the subscription is suspended; ask the gateway's "
                                           "operator")
    return subscription


def _instance(request: web.Request, config: Config, sub: SubscriberConfig) -> InstanceConfig:
    raw = request.match_info["n"]
    instance = config.instances.get(int(raw)) if raw.isascii() and raw.isdigit() else None
    # Another subscriber's number answers exactly like a missing one: nothing leaks.
    if instance is None or not may_use(sub, instance):
        fail(Error.UNKNOWN_INSTANCE,
             f"instance {raw[:20]} does not exist or is not available to this subscription")
    return instance


# ---- the store's answer


def _refusal(outcome: SendOutcome, draft: OutboundDraft, instance: InstanceConfig,
             group_name: str | None, now: float) -> NoReturn:
    if outcome.status == "quota_exceeded":
        assert outcome.reset_at is not None
        wait = max(1, math.ceil(outcome.reset_at - now))
        reset = iso(outcome.reset_at)
        fail(Error.QUOTA_EXCEEDED, f"daily quota of {outcome.limit} messages used up; it "
             f"resets at {reset} (in {wait} s)", {"Retry-After": str(wait)},
             {"reset_at": reset, "limit": outcome.limit})
    if outcome.status == "not_registered":
        fail(Error.NOT_REGISTERED,
             f"{draft.to} has not registered with gateway number {instance.number} "
             f"(instance {instance.id}) or has opted out; they must send Hi to it first")
    if outcome.status == "unknown_group":
        fail(Error.UNKNOWN_GROUP,
             f"no group named {group_name!r} is registered on instance {instance.id}: add the "
             f"gateway number {instance.number} to the group and say Hi there")
    if outcome.status == "recipient_limit":
        fail(Error.RECIPIENT_LIMIT,
             f"the plan's limit of {outcome.limit} recipients in total is reached")
    if outcome.status == "outside_window":
        closed = iso(outcome.window_closed_at)
        since = f"since {closed}" if closed else "(they have not written yet)"
        header = header_for(draft.type)
        with_header = "" if header == "none" else f' with header = "{header}"'
        advice = (f"{outcome.template_problem}, so it is not used: send another approved "
                  "template with the template endpoint" if outcome.template_problem else
                  f'Configure a [[templates]] entry with use = "notification"{with_header} '
                  "for this instance, or send one with the template endpoint")
        fail(Error.OUTSIDE_WINDOW, f"{draft.to} last wrote more than 24 hours ago: the "
             f"customer-service window of instance {instance.id} is closed {since}, and only "
             f"an approved template reaches them. {advice}",
             extra={"window_closed_at": closed})
    raise RuntimeError(f"unknown send outcome {outcome.status!r}")


# ---- routes


def _check_plan(plan: PlanConfig, features: Iterable[str]) -> None:
    missing = missing_feature(plan, features)
    if missing is not None:
        fail(Error.FEATURE_NOT_IN_PLAN,
             f"the {plan.name} plan does not include {missing} messages")


async def to_registered_number(request: web.Request, fields: dict[str, Any],
                               instance: InstanceConfig) -> tuple[str | None, str | None]:
    """(number, None) from the body. A number typed without '+' that
    libphonenumber doubts is the number of someone registered on the instance
    (opted out or not: a send to someone who opted out is refused as such,
    472), or it lacks its country code (471)."""
    try:
        return to_number(fields)
    except UnsureNumber as unsure:
        registrations = await request.app[store_key].registrations_of(unsure.number)
        if any(r.instance_id == instance.id for r in registrations):
            return unsure.number, None
        lacks_country_code(unsure.typed)


async def to_named_group(request: web.Request, fields: dict[str, Any],
                         instance: InstanceConfig) -> tuple[str | None, str | None]:
    return to_group(fields)


# (number, group name) from the body; like the content reader, chosen per route.
RecipientReader = Callable[[web.Request, dict[str, Any], InstanceConfig],
                           Awaitable[tuple[str | None, str | None]]]


async def _send(request: web.Request, *, group: bool, kind: str, recipient: RecipientReader,
                content: ContentReader) -> web.Response:
    snap = snapshot_of(request)
    config = snap.config
    clock = request.app[clock_key]
    sub = require_subscriber(request, config)
    request[subscriber_request_key] = sub.id
    subscription = require_active(sub, config, clock.today())
    instance = _instance(request, config, sub)
    _check_plan(subscription.plan, (kind, "group") if group else (kind,))
    caps = request.app[providers_key][instance.provider].caps
    if not provider_can_send(caps, group=group, kind=kind):
        fail(Error.NOT_SUPPORTED_BY_PROVIDER, f"instance {instance.id} sends through "
             f"{instance.provider}, which cannot send {'group' if group else kind} messages")
    fields = await read_fields(request)
    number, group_name = await recipient(request, fields, instance)
    got = content(fields, instance, caps)
    media = got.media
    draft = OutboundDraft(instance_id=instance.id, to=number, type=kind, text=got.text,
                          caption=got.caption, filename=got.filename,
                          media=media.data if media else None,
                          mime=media.mime if media else None, subscriber_id=sub.id)
    return await _accept(request, config, draft, group_name, subscription.plan, instance)


async def _accept(request: web.Request, config: Config, draft: OutboundDraft,
                  group_name: str | None, plan: PlanConfig,
                  instance: InstanceConfig) -> web.Response:
    now = request.app[clock_key].now()
    outcome = await sends_service(request).accept(config, draft, plan=plan,
                                                  group_name=group_name, now=now)
    if not outcome.queued:
        _refusal(outcome, draft, instance, group_name, now)
    return json_response(Queued(id=outcome.message_id or ""))


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
            fail(Error.INVALID_PARAMETERS, f"template {template.name!r} takes named "
                 f"parameters: {', '.join(template.parameter_names)}")
        values = raw
    elif isinstance(raw, dict):
        if not named:
            fail(Error.INVALID_PARAMETERS,
                 f"template {template.name!r} takes {expected} parameters as a list")
        unknown = sorted(set(raw) - set(template.parameter_names))
        missing = [n for n in template.parameter_names if n not in raw]
        if unknown or missing:
            fail(Error.PARAMETER_COUNT, f"template {template.name!r} takes the parameters "
                 f"{', '.join(template.parameter_names)}"
                 + (f"; unknown: {', '.join(map(str, unknown))[:200]}" if unknown else "")
                 + (f"; missing: {', '.join(missing)}" if missing else ""))
        values = [raw[n] for n in template.parameter_names]
    else:
        fail(Error.INVALID_PARAMETERS, "parameters must be a list or an object")
    if len(values) != expected:
        fail(Error.PARAMETER_COUNT, f"template {template.name!r} takes {expected} "
             f"parameter{'s' if expected != 1 else ''}; {len(values)} given")
    texts: list[str] = []
    for value in values:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            fail(Error.INVALID_PARAMETERS, "each parameter must be a string or a number")
        text = parameter_text(emojize(str(value)))
        if not text:
            fail(Error.INVALID_PARAMETERS, "a parameter must not be empty")
        texts.append(text)
    if named:
        return dict(zip(template.parameter_names, texts, strict=True))
    return texts


def _template_header(fields: dict[str, Any], template: TemplateConfig, instance: InstanceConfig,
                     caps: Capabilities) -> tuple[Media | None, str | None]:
    raw = fields.get("header")
    if template.header == "none":
        if raw not in (None, {}):
            fail(Error.INVALID_HEADER, f"template {template.name!r} has no media header")
        return None, None
    if not isinstance(raw, dict) or not isinstance(raw.get(template.header), str):
        fail(Error.INVALID_HEADER, f"template {template.name!r} needs "
             f'"header": {{"{template.header}": <base64>}}')
    header = fields_of(raw.items())
    filename = read_filename(header) if template.header == "document" else None
    return read_media(header, template.header, instance, caps), filename


async def _send_template(request: web.Request) -> web.Response:
    config = snapshot_of(request).config
    sub = require_subscriber(request, config)
    request[subscriber_request_key] = sub.id
    subscription = require_active(sub, config, request.app[clock_key].today())
    instance = _instance(request, config, sub)
    caps = request.app[providers_key][instance.provider].caps
    if not caps.templates:
        fail(Error.TEMPLATES_NOT_SUPPORTED,
             f"instance {instance.id}'s provider ({instance.provider}) sends no templates")
    fields = await read_fields(request)
    number, _ = await to_registered_number(request, fields, instance)
    name = read_string(fields, "template") or ""
    template = config.templates.named(instance.id, sub.id, name.strip())
    if template is None:
        fail(Error.UNKNOWN_TEMPLATE, f"no template named {name[:100]!r} is configured for "
             f"instance {instance.id}: add it under [[templates]]")
    language = read_string(fields, "language", required=False)
    if language is not None and language not in template.languages.values():
        fail(Error.UNKNOWN_LANGUAGE, f"template {template.name!r} is configured in "
             f"{', '.join(sorted(set(template.languages.values())))}, not {language[:20]!r}")
    parameters = _template_parameters(fields, template)
    media, filename = _template_header(fields, template, instance, caps)
    kind = template.header if media is not None else "text"
    _check_plan(subscription.plan, (kind,))
    use = TemplateUse(name=template.name, language=language, category=template.category,
                      parameters=parameters, header=template.header)
    shown = " ".join(parameters.values() if isinstance(parameters, dict) else parameters)
    draft = OutboundDraft(instance_id=instance.id, to=number, type=kind,
                          text=f"[{template.name}] {shown}".strip(), filename=filename,
                          media=media.data if media else None, mime=media.mime if media else None,
                          subscriber_id=sub.id, template=use.to_json())
    return await _accept(request, config, draft, None, subscription.plan, instance)

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


# What every send can answer before its body is read, and once it is.
ACTIVE_ERRORS = SUBSCRIBER_ERRORS | {Error.SUBSCRIPTION_EXPIRED, Error.SUBSCRIPTION_NOT_STARTED,
                                     Error.SUBSCRIPTION_SUSPENDED}
_SEND_ERRORS = ACTIVE_ERRORS | READ_ERRORS | JSON_ERRORS | FORM_ERRORS | MULTIPART_ERRORS | {
    Error.UNKNOWN_INSTANCE, Error.FEATURE_NOT_IN_PLAN, Error.NOT_SUPPORTED_BY_PROVIDER,
    Error.DUPLICATE_FIELD,
    Error.MISSING_FIELD, Error.INVALID_FIELD, Error.QUOTA_EXCEEDED, Error.NOT_REGISTERED,
    Error.UNKNOWN_GROUP, Error.RECIPIENT_LIMIT, Error.OUTSIDE_WINDOW}
_KIND_ERRORS = {
    "text": {Error.TEXT_TOO_LONG},
    "url": {Error.INVALID_URL},
    "image": {Error.CAPTION_TOO_LONG, Error.BAD_BASE64, Error.EMPTY_MEDIA,
              Error.IMAGE_TOO_LARGE, Error.DOCUMENT_TOO_LARGE, Error.UNSUPPORTED_IMAGE,
              Error.UNSUPPORTED_DOCUMENT},
    "document": {Error.CAPTION_TOO_LONG, Error.BAD_FILENAME, Error.BAD_BASE64,
                 Error.EMPTY_MEDIA, Error.IMAGE_TOO_LARGE, Error.DOCUMENT_TOO_LARGE,
                 Error.UNSUPPORTED_IMAGE, Error.UNSUPPORTED_DOCUMENT}}
_ARTICLED = {"text": "a text", "url": "a URL", "image": "an image",
             "document": "a document"}
_SEND_DESCRIPTION = (
    "The body is read as JSON whatever the Content-Type, except that "
    "application/x-www-form-urlencoded takes the same fields form-encoded (a '+' left "
    "unencoded in base64 or before a number is kept), and multipart/form-data too, an "
    "image or document as a file part (curl -F image=@photo.png); keys are matched ignoring "
    "stray white space and case. Bodies are taken uncompressed only.")


@dataclass(frozen=True, slots=True, kw_only=True)
class Queued:
    status: Literal["queued"] = "queued"
    id: Annotated[str, {"format": "uuid"}]


def _endpoint(group: bool, kind: str) -> Handler:
    content = CONTENT_READERS[kind]
    recipient = to_named_group if group else to_registered_number

    async def send(request: web.Request) -> web.Response:
        return await _send(request, group=group, kind=kind, recipient=recipient,
                           content=content)
    send.__name__ = f"send_{'group' if group else 'single'}_{kind}"
    return _counted(send)


for _audience in ("single", "group"):
    for _kind in KINDS:
        _group_send = _audience == "group"
        routes.operation(
            "post", send_path(_audience, _kind), id=f"send_{_audience}_{_kind}",
            summary=f"Send {_ARTICLED[_kind]} message to a "
                    f"{'group' if _group_send else 'number'}",
            tag="send", security="send", ok=Queued, ok_description="Queued; a worker sends it",
            description=_SEND_DESCRIPTION, parameters=(INSTANCE,), form=True,
            body=send_body(_group_send, _kind),
            errors=_SEND_ERRORS | _KIND_ERRORS[_kind] | (
                set() if _group_send else {Error.INVALID_DESTINATION}),
        )(_endpoint(_group_send, _kind))
routes.operation(
    "post", TEMPLATE_PATH, id="send_single_template",
    summary="Send an approved template message to a number", tag="send", security="send",
    ok=Queued, ok_description="Queued; a worker sends it",
    description="Goes through whatever the 24-hour window (templates are what reach a user "
                "outside it); counts against the quota like any send.",
    parameters=(INSTANCE,), body=template_body(),
    errors=_SEND_ERRORS | _KIND_ERRORS["document"] | {
        Error.INVALID_DESTINATION, Error.TEMPLATES_NOT_SUPPORTED, Error.UNKNOWN_TEMPLATE,
        Error.UNKNOWN_LANGUAGE, Error.INVALID_PARAMETERS, Error.PARAMETER_COUNT,
        Error.INVALID_HEADER},
)(_counted(_send_template))


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusChange:
    at: Time
    status: Literal["queued", "sent", "delivered", "read", "played", "failed", "retry"]
    error: ProviderError | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageStatus(Message):
    """A sent message with its history."""

    history: Annotated[list[StatusChange], doc(
        "Each recorded status change, oldest first (`retry`: an attempt failed and will be "
        "retried; `error` says why). A provider status is timed by the provider's timestamp "
        "when it gave one.")]


@routes.operation(
    "get", "/v3/whatsapp/messages/{id}",
    summary="A sent message's status (only its sender may see it)", tag="send",
    security="send", ok=MessageStatus, ok_description="The message",
    parameters=(path_param("id", "The message id the send answered with",
                           {"type": "string", "format": "uuid"}),),
    errors=ACTIVE_ERRORS | {Error.MESSAGE_NOT_FOUND})
async def message_status(request: web.Request) -> web.Response:
    config = snapshot_of(request).config
    sub = require_subscriber(request, config)
    require_active(sub, config, request.app[clock_key].today())
    row = await request.app[store_key].get_outbound(request.match_info["id"][:100])
    # Only the sender sees a message: anyone else gets the same 404 as for no message.
    if row is None or row.subscriber_id != sub.id:
        fail(Error.MESSAGE_NOT_FOUND, "no message with this id was sent by this subscriber")
    history = await request.app[store_key].status_history(row.id)
    message = Message.of(row)
    return json_response(MessageStatus(
        **{f.name: getattr(message, f.name) for f in fields(Message)},
        history=[StatusChange(at=iso_time(e.at), status=e.status,  # type: ignore[arg-type]
                              error=None if e.error_code is None and e.error_title is None
                              else ProviderError(code=e.error_code, title=e.error_title))
                 for e in history]))
