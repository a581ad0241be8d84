"""Hostile inputs shared by tests/test_hostile_input.py (route by route) and the
fuzz suite (reliability/fuzz.py, against the real service): bodies that are no
JSON object, hostile JSON values, and Meta webhook payloads of odd shapes.

Plain data and builders, no test or service imports: a Meta payload is built
for the `phone_number_id` the caller configured.
"""

from __future__ import annotations

import json
from typing import Any

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
# Bodies refused whatever the route: no JSON object, or strings no message can hold.
NOT_AN_OBJECT = [b"[]", b"[1, 2]", b"1", b"-1e999", b'"text"', b"null", b"true", b"NaN",
                 b"Infinity", b"{", b"{'a': 1}", b"\xff\xfe\xfa", b"{\"a\": \"\xff\"}",
                 b"\x00", b"   ", b'{"a": "\xed\xa0\x80"}', '{"a": "\\u0000"}'.encode("utf-16"),
                 '{"a": "\\udc00"}'.encode("utf-32"), DEEP, DEEP_OBJECT, b'{"a": ' + DEEP + b"}"]

SURROGATE = "\ud800"
# JSON texts (inserted as is into a valid body): a lone surrogate must be
# written escaped, as Python's json writes it.
HOSTILE_VALUES = {
    "int": "1", "float": "1.5", "huge_int": "9" * 400, "huge_float": "1e999", "nan": "NaN",
    "inf": "-Infinity", "bool": "true", "list": "[\"+34600000001\"]", "dict": "{\"a\": 1}",
    "nested": "[[[[[[[[[[[[]]]]]]]]]]]]", "long": json.dumps("x" * 300_000),
    "nul": json.dumps("a\x00b"), "only_nul": json.dumps("\x00"),
    "surrogate": json.dumps(f"Hi {SURROGATE}"), "low_surrogate": json.dumps("\udfff"),
}


def with_field(body: dict[str, Any], name: str, raw_json: str) -> bytes:
    """`body` as JSON with field `name` set to the JSON text `raw_json`, as is."""
    marker = "__HOSTILE__"
    return json.dumps({**body, name: marker}).replace(f'"{marker}"', raw_json).encode()


def meta_value(pnid: str, **value: Any) -> dict[str, Any]:
    """A Meta webhook payload with one change whose value holds `value`."""
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
                                       "metadata": {"phone_number_id": pnid}, **value}}]}]}


def meta_message(pnid: str, **fields: Any) -> dict[str, Any]:
    """A Meta text message from +34600000001, `fields` overriding the message's."""
    return meta_value(pnid, contacts=[{"wa_id": "34600000001", "profile": {"name": "Ana"}}],
                      messages=[{"from": "34600000001", "id": "wamid.odd", "timestamp": "1",
                                 "type": "text", "text": {"body": "Hi"}, **fields}])


def bad_payloads(pnid: str) -> dict[str, Any]:
    """Whole payloads with nothing usable: a 400 with the one error shape."""
    def value(**v: Any) -> dict[str, Any]:
        return meta_value(pnid, **v)

    def message(**f: Any) -> dict[str, Any]:
        return meta_message(pnid, **f)

    return {
        "list": [], "entry_missing": {"object": "x"}, "entry_dict": {"entry": {"changes": []}},
        "entry_string": {"entry": "x"}, "entry_null": {"entry": None},
        "entry_items_junk": {"entry": [None, 1, "x", [], {"changes": None}, {"changes": {}},
                                       {"changes": "x"}, {"changes": [None, 1, "x",
                                                                      {"value": []},
                                                                      {"value": None}]}]},
        "metadata_list": value(metadata=[pnid]), "metadata_string": value(metadata="x"),
        "metadata_null": value(metadata=None),
        "unknown_pnid": value(metadata={"phone_number_id": "1" * 5000}),
        "pnid_dict": value(metadata={"phone_number_id": {"a": 1}}),
        "messages_junk": value(messages=[None, 1, "x", [], {}, {"id": 5}, {"id": ["a"]}]),
        "statuses_junk": value(statuses=[None, 1, "x", [], {}, {"status": "exploded", "id": "w"},
                                         {"status": ["sent"], "id": "w"}, {"status": {}},
                                         {"status": "sent"}]),
        "text_not_string": message(text="Hi"), "text_body_int": message(text={"body": 5}),
        "text_body_list": message(text={"body": ["Hi"]}), "text_list": message(text=["Hi"]),
        "no_sender": message(**{"from": None}),
        "sender_list": message(**{"from": ["34600000001"]}),
        "id_empty": message(id=""), "id_dict": message(id={"a": 1}),
    }


def odd_payloads(pnid: str) -> dict[str, Any]:
    """Odd shapes Meta might send, or an attacker with the secret: at worst the
    odd item is skipped, nothing crashes; whatever is accepted is kept."""
    def value(**v: Any) -> dict[str, Any]:
        return meta_value(pnid, **v)

    def message(**f: Any) -> dict[str, Any]:
        return meta_message(pnid, **f)

    return {
        "messages_int": value(messages=5), "messages_dict": value(messages={"id": "x"}),
        "messages_string": value(messages="abc"), "contacts_int": value(contacts=5, messages=[]),
        "contacts_junk": message(contacts=[None, 1, "x", {"wa_id": {}}, {"wa_id": ["a"]}]),
        "statuses_int": value(statuses=5), "statuses_true": value(statuses=True),
        "type_dict": message(type={"a": 1}), "type_list": message(type=["text"]),
        "type_int": message(type=7), "type_unknown": message(type="hologram"),
        "from_int": message(**{"from": 34600000001}), "from_dict": message(**{"from": {}}),
        "from_user_id_dict": message(**{"from": None, "from_user_id": {"a": 1}}),
        "from_user_id_int": message(**{"from": None, "from_user_id": 12345}),
        "from_letters": message(**{"from": "abc"}), "from_long": message(**{"from": "9" * 5000}),
        "button_text_int": message(type="button", button={"text": 5}),
        "button_string": message(type="button", button="x"),
        "image_caption_dict": message(type="image", image={"caption": {"a": 1}}),
        "image_list": message(type="image", image=[1]),
        "timestamp_garbage": message(timestamp="garbage"),
        "timestamp_nan": message(timestamp="NaN"), "timestamp_inf": message(timestamp="inf"),
        "timestamp_1e999": message(timestamp=1e999), "timestamp_list": message(timestamp=[1]),
        "timestamp_negative": message(timestamp=-1e30),
        "timestamp_huge_int": message(timestamp=10 ** 400),
        "context_string": message(context="x"), "group_id_dict": message(group_id={"a": 1}),
        "group_id_long": message(group_id="g" * 100_000),
        "profile_name_dict": message(contacts=[{"wa_id": "34600000001",
                                                "profile": {"name": {}}}]),
        "profile_name_int": message(contacts=[{"wa_id": "34600000001", "profile": {"name": 5}}]),
        "profile_string": message(contacts=[{"wa_id": "34600000001", "profile": "Ana"}]),
        "text_nul": message(text={"body": "H\x00i"}),
        "text_surrogate": message(text={"body": "Hi \ud800"}),
        "id_surrogate": message(id="wamid.\udfff"),
        "text_long": message(text={"body": "x" * 100_000}),
        "id_long": message(id="w" * 100_000), "id_int": message(id=5),
        "status_odd": value(statuses=[{"id": "wamid.nope", "status": "read", "timestamp": "NaN",
                                       "errors": "x"}]),
        "status_errors_junk": value(statuses=[{"id": {"a": 1}, "status": "failed",
                                               "errors": [{"code": "x", "title": {"a": 1},
                                                           "message": [1]}]}]),
        "status_errors_dict": value(statuses=[{"id": "w", "status": "failed",
                                               "errors": {"a": 1}}]),
        "status_errors_int": value(statuses=[{"id": "w", "status": "failed", "errors": 5}]),
        "status_timestamp_inf": value(statuses=[{"id": "w", "status": "sent",
                                                 "timestamp": "1e999"}]),
    }
