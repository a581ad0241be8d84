"""Every error the web side answers with: its slug, HTTP status and summary.

A route raises only members of `Error` (`bot.web.errors.fail`), and declares
the ones it can raise beside its handler (`bot.web.operations`); /openapi.json
names them from those declarations, so the document and the code cannot drift
apart silently (tests/test_openapi_errors.py).

One slug may be answered with two statuses: `invalid_number` is a 400 in the
admin API and a 471 in the send API (WhatsMate's code). Each pair is a member
of its own, so a member's value is (slug, status) while the member itself is
the slug string; members compare by identity, so the two never stand for each
other in a route's declared set.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class Error(StrEnum):
    status: int
    summary: str

    def __new__(cls, slug: str, status: int, summary: str) -> Self:
        member = str.__new__(cls, slug)
        member._value_ = (slug, status)  # type: ignore[assignment]
        member.status = status
        member.summary = summary
        return member

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<Error.{self.name}: {self.slug} {self.status}>"

    @property
    def slug(self) -> str:
        return str.__str__(self)

    # ---- reading a request (every route)
    BAD_REQUEST = "bad_request", 400, "The request was refused as malformed"
    MALFORMED_REQUEST = "malformed_request", 400, "Not a well-formed HTTP request"
    MALFORMED_BODY = "malformed_body", 400, "The body could not be read (e.g. broken chunked " \
                                            "framing)"
    INCOMPLETE_BODY = "incomplete_body", 400, "The connection closed before the whole body " \
                                              "arrived"
    MALFORMED_JSON = "malformed_json", 400, "The body is not a JSON object"
    MALFORMED_FORM = "malformed_form", 400, "The form-encoded body could not be read"
    MALFORMED_MULTIPART = "malformed_multipart", 400, "The multipart/form-data body could " \
                                                      "not be read"
    INVALID_TEXT = "invalid_text", 400, "A string holds NUL or a lone UTF-16 surrogate, or " \
                                        "is empty where text is needed"
    INVALID_QUERY = "invalid_query", 400, "A query parameter that must be an integer is not " \
                                          "one, or is out of range"
    BODY_TIMEOUT = "body_timeout", 408, "The body stopped arriving before all of it came " \
                                        "([server] body_timeout)"
    PAYLOAD_TOO_LARGE = "payload_too_large", 413, "The request body is over the route's limit"
    UNSUPPORTED_ENCODING = "unsupported_encoding", 415, "The body is compressed " \
                                                        "(Content-Encoding other than " \
                                                        "identity); send it uncompressed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415, "The Content-Type is not one " \
                                                            "this route reads"
    EXPECTATION_FAILED = "expectation_failed", 417, "An Expect header other than 100-continue"
    HEADER_TOO_LARGE = "header_too_large", 431, "The request line or a header is too long, or " \
                                                "there are too many headers"
    NOT_FOUND = "not_found", 404, "No such route"
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "The route does not take this method"
    FORBIDDEN = "forbidden", 403, "Refused"
    HTTP_ERROR = "error", 400, "Refused by the HTTP layer"
    INTERNAL_ERROR = "internal_error", 500, "An error of the gateway's; nothing was accepted"

    # ---- credentials
    UNAUTHORIZED = "unauthorized", 401, "Admin token missing or wrong: send Authorization: " \
                                        "Bearer <token>"
    MISSING_CREDENTIALS = "missing_credentials", 401, "The X-WM-CLIENT-ID or " \
                                                      "X-WM-CLIENT-SECRET header is missing"
    INVALID_CREDENTIALS = "invalid_credentials", 474, "Invalid CLIENT ID or secret"
    TOO_MANY_FAILURES = "too_many_failures", 429, "This address failed to authenticate more " \
                                                  "than 10 times in a minute: wait Retry-After " \
                                                  "seconds"
    SUBSCRIPTION_EXPIRED = "subscription_expired", 474, "The subscription has ended"
    SUBSCRIPTION_NOT_STARTED = "subscription_not_started", 474, "The subscription has not " \
                                                                "started yet"
    SUBSCRIPTION_SUSPENDED = "subscription_suspended", 474, "The subscription is suspended " \
                                                            "by the operator"

    # ---- the send API's body (WhatsMate v3)
    MISSING_FIELD = "missing_field", 400, "A required field is missing"
    INVALID_FIELD = "invalid_field", 400, "A field has the wrong type or an invalid value"
    DUPLICATE_FIELD = "duplicate_field", 400, "A field is given twice"
    TEXT_TOO_LONG = "text_too_long", 400, "The text is over its limit"
    CAPTION_TOO_LONG = "caption_too_long", 400, "The caption is over 250 characters"
    INVALID_URL = "invalid_url", 400, "Not an http(s) URL without spaces"
    BAD_BASE64 = "bad_base64", 400, "The media is not valid base64"
    UNSUPPORTED_IMAGE = "unsupported_image", 400, "Not an image type this number can send"
    UNSUPPORTED_DOCUMENT = "unsupported_document", 400, "The document is not a PDF"
    BAD_FILENAME = "bad_filename", 400, "The filename is empty or not a .pdf"
    IMAGE_TOO_LARGE = "image_too_large", 413, "The image is over 2 MB decoded"
    DOCUMENT_TOO_LARGE = "document_too_large", 413, "The document is over 3 MB decoded"
    EMPTY_MEDIA = "empty_media", 470, "The image or document is empty"
    INVALID_DESTINATION = "invalid_number", 471, "Destination number invalid (not a possible " \
                                                 "number with country code)"
    TEMPLATES_NOT_SUPPORTED = "templates_not_supported", 400, "The instance's provider sends " \
                                                              "no templates"
    UNKNOWN_TEMPLATE = "unknown_template", 400, "No template of this name is configured for " \
                                                "the instance"
    UNKNOWN_LANGUAGE = "unknown_language", 400, "The template is not configured in this " \
                                                "language"
    INVALID_PARAMETERS = "invalid_parameters", 400, "Parameters of the wrong form (a list " \
                                                    "for a named template, an empty one...)"
    PARAMETER_COUNT = "parameter_count", 400, "Not as many parameters as the template takes"
    INVALID_HEADER = "invalid_header", 400, "The media header does not fit the template"

    # ---- the send API's decisions
    UNKNOWN_INSTANCE = "unknown_instance", 404, "No such instance (or, for a subscriber, " \
                                                "not one it may use)"
    FEATURE_NOT_IN_PLAN = "feature_not_in_plan", 403, "The plan does not include this kind " \
                                                      "of message"
    NOT_SUPPORTED_BY_PROVIDER = "not_supported_by_provider", 403, "The instance's provider " \
                                                                  "cannot send this kind " \
                                                                  "(e.g. groups via Twilio)"
    UNKNOWN_GROUP = "unknown_group", 404, "No group of this name is registered on the instance"
    QUOTA_EXCEEDED = "quota_exceeded", 469, "The quota of the running 24-hour period is used up"
    NOT_REGISTERED = "not_registered", 472, "The recipient has not registered with the " \
                                            "gateway number, or opted out"
    RECIPIENT_LIMIT = "recipient_limit", 473, "The plan's total recipient limit is reached"
    OUTSIDE_WINDOW = "outside_window", 475, "Outside the recipient's 24-hour customer-service " \
                                            "window with no notification template " \
                                            "configured; nothing is queued"
    MESSAGE_NOT_FOUND = "message_not_found", 404, "No such message (or not one this " \
                                                  "subscriber sent)"

    # ---- admin, deliveries, sandbox
    INVALID_NUMBER = "invalid_number", 400, "Not a phone number with country code"
    UNKNOWN_NUMBER = "unknown_number", 404, "The number never wrote to this gateway"
    INVALID_STATUS = "invalid_status", 400, "status is not one of the listed values"
    INVALID_DIRECTION = "invalid_direction", 400, "direction is neither in nor out"
    INVALID_INSTANCE = "invalid_instance", 400, "instance is not an integer"
    INVALID_PROFILE = "invalid_profile", 400, "The business profile is not valid"
    RELOAD_REFUSED = "reload_refused", 422, "The new config is refused; the old one stays in " \
                                            "force"
    INVALID_SUBSCRIBER = "invalid_subscriber", 400, "subscriber is over 200 characters"
    INVALID_ENDPOINT = "invalid_endpoint", 400, "endpoint is over 200 characters"
    INVALID_LOCALE = "invalid_locale", 400, "locale is too long"
    MISSING_SINCE = "missing_since", 400, "since is required"
    INVALID_SINCE = "invalid_since", 400, "since is neither ISO 8601 nor epoch seconds, or " \
                                          "out of range"
    UNKNOWN_DELIVERY = "unknown_delivery", 404, "No such delivery (or not one of this " \
                                                "subscriber's)"
    ALREADY_PENDING = "already_pending", 409, "The delivery is being sent right now"
    UNKNOWN_ENDPOINT = "unknown_endpoint", 404, "No such webhook endpoint"
    NO_WEBHOOKS = "no_webhooks", 409, "No webhook endpoint is configured"
    NOT_SANDBOX = "not_sandbox", 400, "The instance (or the message's) is not a sandbox one"
    INVALID_FROM = "invalid_from", 400, "from is not a phone number with country code"
    INVALID_ID = "invalid_id", 400, "id is not a string of at most 200 characters"
    INVALID_GROUP = "invalid_group", 400, "group is not {id, name} of at most 200 characters"
    INVALID_NAME = "invalid_name", 400, "name is not a string"
    INVALID_ERROR = "invalid_error", 400, "error is not {code, title}, or goes with a status " \
                                          "other than failed"
    NOT_SENT_YET = "not_sent_yet", 409, "The sandbox has not sent the message yet"

    # ---- managed subscribers and their secrets
    UNKNOWN_SUBSCRIBER = "unknown_subscriber", 404, "No such subscriber (or it was deleted)"
    UNKNOWN_PLAN = "unknown_plan", 400, "No plan of this name is configured"
    SUBSCRIBER_EXISTS = "subscriber_exists", 409, "The id is in use, or was (a deleted " \
                                                  "subscriber's id is not reused)"
    KEYWORD_TAKEN = "keyword_taken", 409, "Another subscriber has this keyword"
    PROVISIONED = "provisioned", 409, "The subscriber is provisioned by the config file: " \
                                      "change it there"
    NOT_SELF_SERVICE = "not_self_service", 403, "A provisioned subscriber rotates its own " \
                                                "secret and manages its own endpoints only " \
                                                "when its config file entry says " \
                                                "self_service = true"
    CONCURRENT_CHANGE = "concurrent_change", 409, "Another change came first; try again"
    REFUSED_URL = "refused_url", 400, "The URL may not receive webhooks (the message says " \
                                      "why: its scheme, or its host's address)"
    TOO_MANY_ENDPOINTS = "too_many_endpoints", 409, "The subscriber has as many webhook " \
                                                    "endpoints as it may: delete one first"

    # ---- the pages (dashboard, portal)
    NOT_A_FORM = "not_a_form", 400, "A form (application/x-www-form-urlencoded) is expected"
    CSRF_FAILED = "csrf_failed", 403, "The form's CSRF token is missing or wrong"
    CROSS_ORIGIN = "cross_origin", 403, "The form was sent from another site's page"

    # ---- the providers' own routes (webhooks, media URLs)
    NOT_CONFIGURED = "not_configured", 404, "The provider is not configured"
    MISSING_SIGNATURE = "missing_signature", 401, "The provider's signature header is missing"
    BAD_SIGNATURE = "bad_signature", 403, "The signature does not match"
    BAD_HANDSHAKE = "bad_handshake", 400, "Not Meta's verification handshake"
    BAD_VERIFY_TOKEN = "bad_verify_token", 403, "hub.verify_token does not match"
    BAD_PAYLOAD = "bad_payload", 400, "Not an event of the provider's"
    UNKNOWN_SESSION = "unknown_session", 400, "No instance uses this WAHA session"
    FIELD_TOO_LONG = "field_too_long", 400, "A field is over its limit"
    UNKNOWN_PROVIDER_NUMBER = "unknown_number", 400, "Not a number of the provider's " \
                                                     "configured here"
    URL_EXPIRED = "url_expired", 403, "This media URL has expired"
    MEDIA_GONE = "media_gone", 404, "The message's media are no longer kept"
