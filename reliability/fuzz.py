"""Fuzz: the real service answers generated and mutated input with a 2xx or a
4xx, never a 5xx or a dropped connection, and still works afterwards.

Two sources of input, both driven by Hypothesis from one seed (reported; set
WAGATE_FUZZ_SEED to replay a run):

- schemathesis, from the service's own /openapi.json: every documented
  operation, valid and invalid inputs (its positive and negative modes), a
  bounded number of examples each. Every request carries valid credentials
  (admin bearer and the subscriber's headers), so the inputs reach the
  handlers; half the cases name a real instance, a registered number and a
  registered group, so sends get past the first checks.
- Meta webhook payloads with VALID signatures (so they get past the signature
  check): the hostile bodies and odd payloads of reliability/hostile.py,
  generated mutations of a real message (a node replaced by a hostile value or
  removed, raw bytes spliced in, deep nesting, huge numbers, invalid UTF-8,
  NUL, lone surrogates), multi-megabyte bodies, odd Content-Types, and bodies
  that claim a Content-Encoding they do not have.

Requests are made with `requests` (what schemathesis calls through), one at a
time, each with a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from bench.harness import PNID, meta_body, sign
from reliability.common import Row
from reliability.hostile import HOSTILE_VALUES, NOT_AN_OBJECT, bad_payloads, odd_payloads
from reliability.service import (
    ADMIN,
    CLIENT,
    META_INSTANCE,
    SANDBOX_INSTANCE,
    Service,
    get_json,
)

SUITE = "fuzz"
REQUEST_TIMEOUT = 20.0
REGISTERED = "+34600000001"  # on both instances, and in the sandbox group
GROUP = "Team"
# Content-Types a client might send (or get wrong); None: no header at all.
CONTENT_TYPES = [None, "application/json", "application/json; charset=utf-8",
                 "application/json; charset=utf-16", "text/plain", "application/octet-stream",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz",
                 "multipart/form-data", "application/xml", "*/*", "", "json",
                 'application/json; boundary="', "text/html; charset=\"\xe9\""]
# A Content-Encoding the body does not have: the server cannot decode it.
CONTENT_ENCODINGS = ["gzip", "deflate", "br", "zstd", "gzip, identity", "x-unknown"]


@dataclass
class Tally:
    """Answers to one source of input."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    resets: int = 0
    timeouts: int = 0
    first_5xx: str = ""
    first_drop: str = ""
    expecting: int = 0
    as_expected: int = 0
    first_unexpected: str = ""

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def expected(self, label: str, slug: str, body: bytes) -> None:
        """An answer that had to name `slug` (a lone surrogate's invalid_field)."""
        self.expecting += 1
        try:
            met = json.loads(body).get("error") == slug
        except (ValueError, AttributeError):
            met = False
        self.as_expected += met
        if not met and not self.first_unexpected:
            self.first_unexpected = f"{label} -> {body[:160]!r}"

    def answer(self, label: str, status: int, body: bytes) -> None:
        self.cases += 1
        self.statuses[status] += 1
        if status >= 500 and not self.first_5xx:
            self.first_5xx = f"{label} -> {status} {body[:160]!r}"

    def dropped(self, label: str, exc: requests.RequestException) -> None:
        self.cases += 1
        if isinstance(exc, requests.Timeout):
            self.timeouts += 1
        else:
            self.resets += 1
        if not self.first_drop:
            self.first_drop = f"{label} -> {type(exc).__name__}"


def new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only: never a proxy from the environment
    return session


# ---- schemathesis over /openapi.json


@dataclass
class ApiRun:
    tally: Tally = field(default_factory=Tally)
    operations: int = 0
    undocumented: int = 0  # answers whose status, type or shape the document does not give
    first_undocumented: str = ""


def _reach_deeper(case: schemathesis.Case, choice: int) -> schemathesis.Case:
    """Valid credentials always; for half the cases a real instance, number and
    group, so a send gets past the instance and number checks to the rest."""
    headers = {k: v for k, v in (case.headers or {}).items()
               if k.lower() not in {"authorization", "x-wm-client-id", "x-wm-client-secret"}}
    case.headers = {**headers, **ADMIN, **CLIENT}
    if choice % 2:
        if "n" in (case.path_parameters or {}):
            case.path_parameters = {**case.path_parameters,
                                    "n": META_INSTANCE if choice == 1 else SANDBOX_INSTANCE}
        if isinstance(case.body, dict):
            if "number" in case.body:
                case.body = {**case.body, "number": REGISTERED}
            if "group_name" in case.body:
                case.body = {**case.body, "group_name": GROUP}
    return case


def fuzz_api(base: str, document: dict[str, Any], seed: int, examples: int) -> ApiRun:
    schema = schemathesis.openapi.from_dict(document)
    run = ApiRun()
    session = new_session()
    for result in schema.get_all_operations():
        operation = result.ok()
        run.operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(base, session, operation, mode, seed, examples, run)
            except Unsatisfiable:
                pass  # no invalid input exists for an operation without parameters
    return run


def fuzz_operation(base: str, session: requests.Session, operation: schemathesis.APIOperation,
                   mode: GenerationMode, seed: int, examples: int, run: ApiRun) -> None:
    checks = [schemathesis.checks.status_code_conformance,
              schemathesis.checks.content_type_conformance,
              schemathesis.checks.response_schema_conformance]
    cases = st.tuples(operation.as_strategy(generation_mode=mode),
                      st.integers(0, 3)).map(lambda pair: _reach_deeper(*pair))

    @hypothesis_seed(seed)
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def one(case: schemathesis.Case) -> None:
        label = f"{case.method} {case.formatted_path} ({mode.value})"
        try:
            response = case.call(base_url=base, session=session, timeout=REQUEST_TIMEOUT)
        except requests.RequestException as exc:
            run.tally.dropped(label, exc)
            return
        run.tally.answer(label, response.status_code, response.content)
        try:
            case.validate_response(response, checks=checks)
        except (schemathesis.errors.FailureGroup, AssertionError) as failure:
            run.undocumented += 1
            if not run.first_undocumented:
                first = failure.exceptions[0] if isinstance(
                    failure, schemathesis.errors.FailureGroup) else failure
                run.first_undocumented = f"{label} -> {response.status_code}: " + \
                    getattr(first, "title", str(first))[:160]
    one()


# ---- Meta payloads with valid signatures


@dataclass(frozen=True, slots=True)
class Post:
    """One request, as sent (a Meta body with its valid signature)."""

    label: str
    path: str
    body: bytes
    headers: dict[str, str]
    method: str = "POST"
    expect: str = ""  # the error slug the answer must carry ("": any 2xx/4xx)


def _meta(label: str, body: bytes, content_type: str | None = "application/json",
          **headers: str) -> Post:
    base = {"Content-Type": content_type} if content_type is not None else {}
    return Post(label, "/webhooks/meta", body,
                {**base, **headers, "X-Hub-Signature-256": sign(body)})


def _message(text: str = "hello") -> dict[str, Any]:
    return json.loads(meta_body(REGISTERED.lstrip("+"), text, f"wamid.FUZZ{uuid.uuid4().hex}"))


def fixed_posts() -> list[Post]:
    """The shared hostile corpus, big bodies and odd Content-Types, all signed."""
    posts = [_meta(f"not an object #{i}", body) for i, body in enumerate(NOT_AN_OBJECT)]
    for kind, payloads in (("bad payload", bad_payloads(PNID)),
                           ("odd payload", odd_payloads(PNID))):
        posts += [_meta(f"{kind} {name}", json.dumps(p).encode()) for name, p in payloads.items()]
    for megabytes in (1, 2.9, 3.5):  # the limit is 3 MB: the last one is a 413
        text = "x" * int(megabytes * 1024 * 1024)
        posts.append(_meta(f"{megabytes} MB text", json.dumps(_message(text)).encode()))
    batch = _message()
    batch["entry"][0]["changes"][0]["value"]["messages"] *= 1000
    posts.append(_meta("1,000 copies of one message", json.dumps(batch).encode()))
    body = json.dumps(_message()).encode()
    posts += [_meta(f"Content-Type {ct!r}", body, ct) for ct in CONTENT_TYPES]
    return posts


def encoding_posts() -> list[Post]:
    """Bodies that say they are compressed and are not, on every route that reads one."""
    meta = json.dumps(_message()).encode()
    send = json.dumps({"number": REGISTERED, "message": "hello"}).encode()
    inbound = json.dumps({"instance": SANDBOX_INSTANCE, "from": REGISTERED,
                          "text": "hello"}).encode()
    posts = []
    for encoding in CONTENT_ENCODINGS:
        posts.append(_meta(f"Content-Encoding {encoding!r} /webhooks/meta", meta,
                           **{"Content-Encoding": encoding}))
        posts.append(Post(f"Content-Encoding {encoding!r} send", f"/v3/whatsapp/single/text/"
                          f"message/{META_INSTANCE}", send, {
                              **CLIENT, "Content-Type": "application/json",
                              "Content-Encoding": encoding}))
        posts.append(Post(f"Content-Encoding {encoding!r} /sandbox/inbound", "/sandbox/inbound",
                          inbound, {**ADMIN, "Content-Type": "application/json",
                                    "Content-Encoding": encoding}))
    return posts


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterable[tuple[Any, ...]]:
    """Every key path into a JSON tree."""
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, (*prefix, index))


def _replaced(tree: Any, path: tuple[Any, ...], make: Callable[[Any], Any]) -> Any:
    """A copy of `tree` with the node at `path` replaced by make(node)."""
    if not path:
        return make(tree)
    copy = list(tree) if isinstance(tree, list) else dict(tree)
    copy[path[0]] = _replaced(tree[path[0]], path[1:], make)
    return copy


def _without(tree: Any, path: tuple[Any, ...]) -> Any:
    """A copy of `tree` without the node at `path` (null for the root)."""
    if not path:
        return None
    copy = list(tree) if isinstance(tree, list) else dict(tree)
    if len(path) == 1:
        del copy[path[0]]
    else:
        copy[path[0]] = _without(tree[path[0]], path[1:])
    return copy


_MARKER = "__RAW_JSON__"
BASE_PATHS = list(_paths(_message()))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(10 ** 300, 10 ** 400)
    | st.floats() | st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@st.composite
def meta_mutations(draw: st.DrawFn) -> Post:
    """A real message, mutated once, signed as sent, with an odd Content-Type at times."""
    payload = _message(draw(st.text(max_size=40)))
    path = draw(st.sampled_from(BASE_PATHS))
    how = draw(st.sampled_from(["value", "raw", "remove", "nest", "bytes"]))
    if how == "value":
        body = json.dumps(_replaced(payload, path, lambda _: draw(json_values))).encode()
    elif how == "raw":  # JSON no encoder writes: 400-digit numbers, 1e999, NaN
        raw = draw(st.sampled_from(sorted(HOSTILE_VALUES.values(), key=len)))
        body = json.dumps(_replaced(payload, path, lambda _: _MARKER)).replace(
            f'"{_MARKER}"', raw).encode()
    elif how == "remove":
        body = json.dumps(_without(payload, path)).encode()
    elif how == "nest":
        depth = draw(st.sampled_from([10, 1_000, 50_000]))
        body = json.dumps(_replaced(payload, path, lambda _: _MARKER)).replace(
            f'"{_MARKER}"', "[" * depth + "1" + "]" * depth).encode()
    else:  # invalid UTF-8, NUL and control bytes spliced into the text
        text = json.dumps(payload).encode()
        at = draw(st.integers(0, len(text)))
        body = text[:at] + draw(st.binary(min_size=1, max_size=6)) + text[at:]
    content_type = draw(st.sampled_from(CONTENT_TYPES[:3]) | st.sampled_from(CONTENT_TYPES))
    return _meta(f"mutation {how} at {'/'.join(map(str, path)) or 'root'}", body, content_type)


def post_all(base: str, posts: Iterable[Post], tally: Tally) -> None:
    session = new_session()
    for post in posts:
        try:
            response = session.request(post.method, base + post.path, data=post.body,
                                       headers=post.headers, timeout=REQUEST_TIMEOUT)
        except requests.RequestException as exc:
            tally.dropped(post.label, exc)
            continue
        tally.answer(post.label, response.status_code, response.content)
        if post.expect:
            tally.expected(post.label, post.expect, response.content)


# ---- text that is not Unicode, on every operation of the document

LONE = "\ud800"
LONE_PERCENT = "%ED%A0%80"  # a lone surrogate's UTF-8 bytes, percent-encoded


def _resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        for part in node["$ref"].lstrip("#/").split("/"):
            document = document[part]
        node = document
    return node


def _properties(document: dict[str, Any], schema: Any, depth: int = 0) -> list[str]:
    """The field names a body schema names (through $ref, oneOf, anyOf, allOf)."""
    schema = _resolve(document, schema)
    if not isinstance(schema, dict) or depth > 4:
        return []
    names = list(schema.get("properties", {}))
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in schema.get(key, []):
            names += [n for n in _properties(document, sub, depth + 1) if n not in names]
    return names


def _json_bodies(fields: list[str]) -> dict[str, bytes]:
    """Bodies whose first string field holds a lone surrogate, in each way one
    arrives, and a valid UTF-16 body."""
    good = {name: "x" for name in fields} or {"x": "x"}
    bad = {**good, next(iter(good)): "Hi " + LONE}
    text = json.dumps(bad, ensure_ascii=False)
    return {"\\ud800 escape": json.dumps(bad).encode(),
            "surrogate as UTF-8 bytes": text.encode("utf-8", "surrogatepass"),
            "UTF-16 with a surrogate": text.encode("utf-16", "surrogatepass"),
            "UTF-16 valid": json.dumps(good, ensure_ascii=False).encode("utf-16")}


def unicode_posts(document: dict[str, Any]) -> list[Post]:
    """Every operation with a lone surrogate in its path parameters, in its query
    parameters, and (where it takes one) in its JSON body (escaped, as UTF-8
    bytes, in UTF-16) and form body, plus a valid UTF-16 body; valid
    credentials, a real instance."""
    posts = []
    headers = {**ADMIN, **CLIENT}
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = [_resolve(document, p) for p in operation.get("parameters", [])]
            # Templates go out on the meta number only; groups on the sandbox's only.
            instance = META_INSTANCE if "/template/" in template else SANDBOX_INSTANCE
            path = template.replace("{n}", str(instance))
            label = f"{method.upper()} {template}"
            if "{" in path:
                bad = "x" + LONE_PERCENT
                posts.append(Post(f"{label}: path", path.replace("{id}", bad).replace(
                    "{number}", bad).replace("{key}", bad), b"", headers, method.upper()))
                # Otherwise real values, so that the body is read at all.
                path = re.sub(r"\{[^}]+\}", "x", path.replace(
                    "{number}", REGISTERED).replace("/instances/{id}", f"/instances/{instance}"))
            query = [p["name"] for p in params if p.get("in") == "query"]
            if query:
                posts.append(Post(f"{label}: query", path + "?" + "&".join(
                    f"{name}={LONE_PERCENT}" for name in query), b"", headers, method.upper()))
            content = _resolve(document, operation.get("requestBody", {})).get("content", {})
            if "application/json" in content:
                fields = _properties(document, content["application/json"].get("schema"))
                for how, body in _json_bodies(fields).items():
                    posts.append(Post(f"{label}: {how}", path, body, {
                        **headers, "Content-Type": "application/json"}, method.upper(),
                        expect="" if how == "UTF-16 valid" else "invalid_field"))
            if "application/x-www-form-urlencoded" in content:
                posts.append(Post(f"{label}: form", path, f"message={LONE_PERCENT}".encode(), {
                    **headers, "Content-Type": "application/x-www-form-urlencoded"},
                    method.upper()))
    return posts


def fuzz_meta(base: str, seed: int, mutations: int) -> Tally:
    tally = Tally()
    post_all(base, fixed_posts(), tally)

    @hypothesis_seed(seed)
    @settings(max_examples=mutations, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(post=meta_mutations())
    def one(post: Post) -> None:
        post_all(base, [post], tally)
    one()
    return tally


# ---- the suite


async def _ok(session: aiohttp.ClientSession, service: Service, path: str, body: dict[str, Any],
              headers: dict[str, str]) -> dict[str, Any]:
    async with session.post(service.url("wagate", path), json=body, headers=headers) as resp:
        answer = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"{path}: {resp.status} {answer[:200]}")
        return json.loads(answer)


async def register(session: aiohttp.ClientSession, service: Service) -> None:
    """REGISTERED says Hi on both numbers and in the sandbox group (again after
    the run: a fuzzed opt-out may have reached it)."""
    body = meta_body(REGISTERED.lstrip("+"), "Hi", f"wamid.{uuid.uuid4().hex}")
    async with session.post(service.url("wagate", "/webhooks/meta"), data=body, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": sign(body)}) as r:
        if r.status != 200:
            raise RuntimeError(f"registering on the meta number: {r.status} {await r.text()}")
    for group in (None, {"id": "g-team", "name": GROUP}):
        await _ok(session, service, "/sandbox/inbound", {
            "instance": SANDBOX_INSTANCE, "from": REGISTERED, "text": "Hi",
            **({"group": group} if group else {})}, ADMIN)


async def send_works(session: aiohttp.ClientSession, service: Service) -> str:
    """A normal send after the run: queued, then sent to the Graph server."""
    await register(session, service)
    queued = await _ok(session, service, f"/v3/whatsapp/single/text/message/{META_INSTANCE}",
                       {"number": REGISTERED, "message": "after the fuzz"}, CLIENT)
    deadline = time.monotonic() + 30
    status = "queued"
    while time.monotonic() < deadline:
        message = await get_json(session, service.url(
            "wagate", f"/v3/whatsapp/messages/{queued['id']}"), CLIENT)
        status = message["status"]
        if status != "queued":
            break
        await asyncio.sleep(0.1)
    return status


def fuzz_seed() -> int:
    given_seed = os.environ.get("WAGATE_FUZZ_SEED", "").strip()
    return int(given_seed) if given_seed else secrets.randbits(32)


async def run(small: bool, workdir: Path) -> list[Row]:
    seed = fuzz_seed()
    examples, mutations = (6, 60) if small else (120, 3_000)
    service = Service(tmp=workdir, quick=small)
    await asyncio.to_thread(service.start_all)
    try:
        async with aiohttp.ClientSession() as session:
            await register(session, service)
            base = service.url("wagate")
            document = await get_json(session, base + "/openapi.json")
            started = time.perf_counter()
            api = await asyncio.to_thread(fuzz_api, base, document, seed, examples)
            meta = await asyncio.to_thread(fuzz_meta, base, seed, mutations)
            encoded = Tally()
            await asyncio.to_thread(post_all, base, encoding_posts(), encoded)
            unicode = Tally()
            await asyncio.to_thread(post_all, base, unicode_posts(document), unicode)
            elapsed = time.perf_counter() - started
            async with session.get(base + "/readyz") as resp:
                ready = resp.status
            sent = await send_works(session, service)
    finally:
        await asyncio.to_thread(service.stop_all)
    return rows(seed, api, meta, encoded, unicode, ready, sent, elapsed)


def rows(seed: int, api: ApiRun, meta: Tally, encoded: Tally, unicode: Tally, ready: int,
         sent: str, elapsed: float) -> list[Row]:
    def errors(tally: Tally) -> str:
        figure = f"{tally.server_errors:,} of {tally.cases:,}"
        return figure + (f"; first: {tally.first_5xx}" if tally.first_5xx else "")

    def dropped(*tallies: Tally) -> tuple[int, int, str]:
        first = next((t.first_drop for t in tallies if t.first_drop), "")
        return (sum(t.resets for t in tallies), sum(t.timeouts for t in tallies), first)

    resets, timeouts, first_drop = dropped(api.tally, meta)
    enc_resets, enc_timeouts, enc_first = dropped(encoded)
    uni_resets, uni_timeouts, uni_first = dropped(unicode)
    total = api.tally.cases + meta.cases + encoded.cases + unicode.cases
    return [
        Row(suite=SUITE, measure="seed (WAGATE_FUZZ_SEED replays it)", figure=str(seed)),
        Row(suite=SUITE, measure="cases: schemathesis, Meta payloads, encodings, Unicode",
            figure=f"{api.tally.cases:,} over {api.operations} operations, {meta.cases:,}, "
                   f"{encoded.cases:,}, {unicode.cases:,} ({total / elapsed:,.0f}/s)"),
        Row(suite=SUITE, measure="5xx: documented operations (schemathesis)",
            figure=errors(api.tally), target="0", met=api.tally.server_errors == 0),
        Row(suite=SUITE, measure="5xx: Meta payloads with valid signatures",
            figure=errors(meta), target="0", met=meta.server_errors == 0),
        Row(suite=SUITE, measure="connection resets, timeouts",
            figure=f"{resets}, {timeouts}" + (f"; first: {first_drop}" if first_drop else ""),
            target="0, 0", met=resets == timeouts == 0),
        Row(suite=SUITE, measure="undecodable Content-Encoding: 5xx, resets, timeouts",
            figure=f"{encoded.server_errors}, {enc_resets}, {enc_timeouts} of {encoded.cases}"
                   + (f"; first: {encoded.first_5xx or enc_first}"
                      if encoded.first_5xx or enc_first else ""),
            target="0, 0, 0", met=encoded.server_errors == enc_resets == enc_timeouts == 0),
        Row(suite=SUITE, measure="lone surrogates and UTF-16 bodies on every operation: "
                                 "5xx, resets, timeouts",
            figure=f"{unicode.server_errors}, {uni_resets}, {uni_timeouts} of {unicode.cases}"
                   + (f"; first: {unicode.first_5xx or uni_first}"
                      if unicode.first_5xx or uni_first else ""),
            target="0, 0, 0", met=unicode.server_errors == uni_resets == uni_timeouts == 0),
        Row(suite=SUITE, measure="...a JSON body with a lone surrogate answered invalid_field",
            figure=f"{unicode.as_expected} of {unicode.expecting}"
                   + (f"; first other: {unicode.first_unexpected}"
                      if unicode.first_unexpected else ""), target="all",
            met=unicode.as_expected == unicode.expecting > 0),
        Row(suite=SUITE, measure="answers the document does not describe",
            figure=f"{api.undocumented:,} of {api.tally.cases:,}"
                   + (f"; first: {api.first_undocumented}" if api.first_undocumented else "")),
        Row(suite=SUITE, measure="/readyz after the run", figure=str(ready), target="200",
            met=ready == 200),
        Row(suite=SUITE, measure="a normal send after the run", figure=sent,
            target="sent", met=sent in ("sent", "delivered", "read")),
    ]
