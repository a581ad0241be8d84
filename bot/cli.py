"""The `wagate` command: serve, and the admin's tools over the admin API."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = os.environ.get("WAGATE_CONFIG", "config.example.toml")


def _load(path: str) -> Any:
    from bot.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


# ------------------------------------------------------------------ serve


def setup_logging(level: str, fmt: str) -> None:
    from bot.logs import configure

    configure(level=level, fmt=fmt)


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot import heap
    from bot.app import create_app
    from bot.locales import LocaleError
    from bot.web.keys import inflight_key, reloader_key
    from bot.web.server import make_runner

    setup_logging(args.log_level, args.log_format)
    # The store's thread hands results back to the event loop many times a
    # second; the default 5 ms GIL switch interval makes each hand-off wait.
    sys.setswitchinterval(float(os.environ.get("WAGATE_SWITCH_INTERVAL", "0.0005")))
    config = _load(args.config)
    try:
        app = create_app(config)
    except (LocaleError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log = logging.getLogger("wagate")
    pid_file = Path(config.server.pid_file) if config.server.pid_file else None

    async def on_startup(app: web.Application) -> None:
        def on_sighup() -> None:
            log.info("SIGHUP: reloading %s", config.path)
            app[reloader_key].request()  # a burst of signals coalesces
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
        if pid_file:
            pid_file.write_text(f"{os.getpid()}\n")
        heap.freeze()
        log.info("wagate serving on http://%s:%d (%d instance(s))", config.server.host,
                 config.server.port, len(config.instances))

    async def on_cleanup(app: web.Application) -> None:
        if pid_file:
            pid_file.unlink(missing_ok=True)
        log.info("wagate stopped")

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    timeout = config.server.shutdown_timeout

    async def serve() -> None:
        """SIGTERM or SIGINT: stop accepting, let every request in flight finish
        (its body still uploading included) for up to shutdown_timeout, then
        aiohttp's cleanup: idle connections closed, the workers stopped (sends
        under way finish, claims released), the store closed. A second signal
        skips the wait."""
        runner = make_runner(app, shutdown_timeout=timeout)
        await runner.setup()
        try:
            site = web.TCPSite(runner, config.server.host, config.server.port)
            await site.start()
            stopping, hurry = asyncio.Event(), asyncio.Event()

            def on_stop(sig: signal.Signals) -> None:
                if stopping.is_set():
                    log.warning("%s again: stopping without waiting", sig.name)
                    hurry.set()
                    return
                log.info("%s: stopping; no new connections, %d request(s) in flight",
                         sig.name, app[inflight_key].count)
                stopping.set()

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, on_stop, sig)
            await stopping.wait()
            inflight = app[inflight_key]
            inflight.draining = True
            await site.stop()
            waits = [asyncio.ensure_future(inflight.wait_idle()),
                     asyncio.ensure_future(hurry.wait())]
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
            if inflight.count:
                log.warning("%d request(s) still in flight after %gs: cut off",
                            inflight.count, timeout)
        finally:
            await runner.cleanup()

    from bot.eventloop import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as loop_runner:
        loop_runner.run(serve())
    return 0


# ------------------------------------------------------------------ admin client


def _base_url(config: Any) -> str:
    host = config.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    return f"http://{host}:{config.server.port}"


def _call(config: Any, method: str, path: str, body: Any = None,
          params: dict[str, Any] | None = None, url: str | None = None) -> Any:
    import aiohttp

    async def go() -> Any:
        headers = {"Authorization": f"Bearer {config.admin_token}"}
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with aiohttp.ClientSession() as session, session.request(
                method, (url or _base_url(config)) + path, json=body, params=query,
                headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                message = data.get("error_message") if isinstance(data, dict) else data
                raise SystemExit(f"error: HTTP {resp.status}: {message}")
            return data

    try:
        return asyncio.run(go())
    except OSError as exc:
        raise SystemExit(f"error: cannot reach wagate at {url or _base_url(config)}: {exc}"
                         ) from None


def _print(data: Any, args: argparse.Namespace, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print("\n".join(lines) if lines else "(nothing)")


def cmd_simulate(args: argparse.Namespace) -> int:
    config = _load(args.config)
    body: dict[str, Any] = {"instance": args.instance, "from": args.sender, "text": args.text}
    if args.name:
        body["name"] = args.name
    if args.id:
        body["id"] = args.id
    if args.group_id:
        body["group"] = {"id": args.group_id, "name": args.group_name or args.group_id}
    data = _call(config, "POST", "/sandbox/inbound", body, url=args.url)
    _print(data, args, [f"delivered inbound message {data['id']}"
                        + (" (duplicate, ignored)" if data.get("duplicate") else "")])
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    config = _load(args.config)
    data = _call(config, "GET", "/sandbox/outbox",
                 params={"to": args.to, "instance": args.instance, "limit": args.limit},
                 url=args.url)
    lines = []
    for m in data["messages"]:
        dest = m["to"] or f"group {m['group']['name'] or m['group']['id']}"
        body = m["text"] or (f"[{m['type']}] {m['filename'] or ''} {m['caption'] or ''}")
        lines.append(f"{m['created_at']}  #{m['instance']} -> {dest}  [{m['status']}]\n"
                     f"    {body}")
    _print(data, args, lines)
    return 0


def cmd_registrations(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if args.opt_out:
        if not args.number:
            raise SystemExit("error: --opt-out needs a number")
        data = _call(config, "POST", f"/admin/registrations/{args.number}/opt-out",
                     params={"instance": args.instance}, url=args.url)
        lines = [f"opted out on {data['changed']} instance(s) "
                 f"({len(data['registrations']) - data['changed']} already opted out)"]
        lines += [f"#{r['instance']}  {r['number']:<16} {r['locale']:<8} {r['status']}"
                  for r in data["registrations"]]
        _print(data, args, lines)
        return 0
    if args.number:
        data = _call(config, "GET", f"/admin/registrations/{args.number}", url=args.url)
    else:
        data = _call(config, "GET", "/admin/registrations",
                     params={"instance": args.instance, "status": args.status,
                             "limit": args.limit}, url=args.url)
    lines = [f"#{r['instance']}  {r['number']:<16} {r['locale']:<8} {r['status']:<10} "
             f"since {r['registered_at']}" for r in data["registrations"]]
    _print(data, args, lines)
    return 0


def cmd_messages(args: argparse.Namespace) -> int:
    config = _load(args.config)
    data = _call(config, "GET", "/admin/messages",
                 params={"direction": args.direction, "number": args.number,
                         "instance": args.instance, "limit": args.limit}, url=args.url)
    lines = [f"{m['at']}  {'<-' if m['direction'] == 'in' else '->'} #{m['instance']} "
             f"{m['number'] or m['group_id']}  {m['type']}"
             f"{' [' + m['status'] + ']' if m['status'] else ''}" for m in data["messages"]]
    _print(data, args, lines)
    return 0


def _sighup(config: Any, args: argparse.Namespace) -> int:
    pid_file = Path(config.server.pid_file) if config.server.pid_file else None
    if pid_file is None or not pid_file.exists():
        raise SystemExit("error: no pid file to signal (set [server] pid_file)")
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"error: cannot signal the pid in {pid_file}: {exc}") from None
    _print({"status": "signalled", "pid": pid}, args,
           [f"sent SIGHUP to wagate (pid {pid}); see its log for the outcome"])
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Through the admin API, which answers with the outcome (refused: exit 1 and
    the reason); SIGHUP through the pid file with --signal, or when the API cannot
    be reached."""
    config = _load(args.config)
    if args.signal:
        return _sighup(config, args)
    try:
        data = _call(config, "POST", "/admin/reload", url=args.url)
    except SystemExit as exc:
        if "cannot reach wagate" in str(exc) and config.server.pid_file and not args.url \
                and Path(config.server.pid_file).exists():
            return _sighup(config, args)
        raise SystemExit(str(exc).replace("error: HTTP 422: ", "error: reload refused: ")
                         ) from None
    _print(data, args, [f"reloaded (generation {data['generation']})"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    config = _load(args.config)
    base = args.url or _base_url(config)
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as resp:
            ready = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        ready = json.loads(exc.read() or b"{}")
    except OSError as exc:
        raise SystemExit(f"error: cannot reach wagate at {base}: {exc}") from None
    summary = _call(config, "GET", "/admin/config", url=args.url)
    data = {"ready": ready, "config": summary}
    lines = [f"{ready.get('status')}" + "".join(f"\n  - {r}" for r in ready.get("reasons", [])),
             f"config {summary['path']} (generation {summary['generation']}, "
             f"loaded {summary['loaded_at']})",
             "instances: " + ", ".join(f"#{i['id']} {i['number']} ({i['provider']})"
                                        for i in summary["instances"]),
             "subscribers: " + (", ".join(f"{s['id']} ({s['plan']})"
                                          for s in summary["subscribers"]) or "none"),
             "locales: " + " ".join(summary["locales"])]
    _print(data, args, lines)
    return 0 if ready.get("status") == "ready" else 1


# ---- webhooks: deliveries and endpoints


def _delivery_line(d: dict[str, Any]) -> str:
    last = d["last_error"] or (f"HTTP {d['last_status_code']}" if d["last_status_code"] else "")
    return (f"{d['created_at']}  {d['id']}  {d['subscriber']:<10} {d['type']:<18} "
            f"{d['status']:<9} x{d['attempts']}  {d['endpoint']['url']}"
            + (f"\n    {last}" if last and d["status"] != "delivered" else ""))


def cmd_deliveries(args: argparse.Namespace) -> int:
    config = _load(args.config)
    action = args.action
    if action == "list":
        data = _call(config, "GET", "/admin/deliveries",
                     params={"status": args.status, "subscriber": args.subscriber,
                             "endpoint": args.endpoint, "limit": args.limit}, url=args.url)
        _print(data, args, [_delivery_line(d) for d in data["deliveries"]])
    elif action == "show":
        data = _call(config, "GET", f"/admin/deliveries/{args.id}", url=args.url)
        d = data["delivery"]
        lines = [_delivery_line(d), "payload: " + json.dumps(d["payload"], ensure_ascii=False)]
        lines += [f"  {a['at']}  {a['outcome']:<9} {a['status_code'] or '-'}  "
                  f"{a['latency_ms'] if a['latency_ms'] is not None else '-'} ms"
                  f"  {a['error'] or ''}"
                  + (f"\n      {a['response_body'][:200]}" if a["response_body"] else "")
                  for a in d["attempt_log"]]
        _print(data, args, lines)
    elif action == "retry":
        data = _call(config, "POST", f"/admin/deliveries/{args.id}/retry", url=args.url)
        _print(data, args, [f"queued again: {data['delivery']['id']}"])
    elif action == "replay":
        data = _call(config, "POST", "/admin/deliveries/replay",
                     params={"since": args.since, "subscriber": args.subscriber,
                             "endpoint": args.endpoint}, url=args.url)
        _print(data, args, [f"replaying {data['replayed']} failed deliveries since "
                            f"{data['since']}"])
    elif action == "endpoints":
        data = _call(config, "GET", "/admin/endpoints", url=args.url)
        _print(data, args, [
            f"{e['key']}  {e['subscriber']:<10} {e['status']:<8} pending {e['pending']:<4} "
            f"failed {e['failed']:<4} {e['url']}"
            + (f"\n    disabled: {e['disabled_reason']}" if e["disabled_reason"] else "")
            for e in data["endpoints"]])
    else:  # enable-endpoint
        data = _call(config, "POST", f"/admin/endpoints/{args.key}/enable",
                     params={"subscriber": args.subscriber}, url=args.url)
        _print(data, args, [f"endpoint {data['key']}: enabled {data['enabled']}"
                            + (" (it was not disabled)" if not data["enabled"] else "")])
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """The same validation as a reload, offline, with the same messages."""
    from bot.config import ConfigError
    from bot.locales import LocaleError
    from bot.runtime import load_snapshot

    try:
        snap = load_snapshot(args.path)
    except (ConfigError, LocaleError) as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    c = snap.config
    data = {"ok": True, "path": args.path, "instances": len(c.instances),
            "subscribers": len(c.subscribers), "plans": len(c.plans),
            "locales": sorted(snap.locales.locales)}
    _print(data, args, [f"{args.path}: OK — {len(c.instances)} instance(s), "
                        f"{len(c.subscribers)} subscriber(s), {len(c.plans)} plan(s), "
                        f"{len(snap.locales.locales)} locale(s)"])
    return 0


def cmd_hash_secret(args: argparse.Namespace) -> int:
    from bot.config import hash_secret

    secret = args.secret
    if secret is None:
        secret = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else \
            getpass.getpass("secret: ")
    if not secret:
        print("error: empty secret", file=sys.stderr)
        return 2
    digest = hash_secret(secret)
    _print({"secret_sha256": digest}, args, [f'secret_sha256 = "{digest}"'])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wagate", description="Self-hosted WhatsApp gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, *, client: bool = True) -> None:
        p.add_argument("--config", default=DEFAULT_CONFIG, help="config file (TOML)")
        if client:
            p.add_argument("--url", help="admin URL of the running service "
                           "(default: from [server] in the config)")
            p.add_argument("--json", action="store_true", help="print JSON for scripts")

    p = sub.add_parser("serve", help="run the service")
    common(p, client=False)
    p.add_argument("--log-level", default=os.environ.get("WAGATE_LOG_LEVEL", "INFO"))
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("simulate", help="inject an inbound message (sandbox instances)")
    common(p)
    p.add_argument("--instance", type=int, default=1)
    p.add_argument("--from", dest="sender", required=True, help="sender, e.g. +34600000001")
    p.add_argument("--name", help="profile name")
    p.add_argument("--id", help="provider message id (generated when absent)")
    p.add_argument("--group-id", help="say it in this group")
    p.add_argument("--group-name", help="the group's name")
    p.add_argument("text")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("outbox", help="list messages sent (sandbox)")
    common(p)
    p.add_argument("--to")
    p.add_argument("--instance", type=int)
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_outbox)

    p = sub.add_parser("registrations", help="list registrations, or one number's")
    common(p)
    p.add_argument("number", nargs="?")
    p.add_argument("--instance", type=int)
    p.add_argument("--status", choices=("active", "opted_out"))
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--opt-out", action="store_true",
                   help="opt NUMBER out by hand (on --instance, else on every instance)")
    p.set_defaults(func=cmd_registrations)

    p = sub.add_parser("messages", help="the message log, both directions")
    common(p)
    p.add_argument("--direction", choices=("in", "out"))
    p.add_argument("--number")
    p.add_argument("--instance", type=int)
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_messages)

    p = sub.add_parser("reload", help="reload the running service's config and locales")
    common(p)
    p.add_argument("--signal", action="store_true",
                   help="send SIGHUP to the pid in [server] pid_file instead of the admin API")
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser("status", help="readiness and the config in force")
    common(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("deliveries", help="webhook deliveries: list, show, retry, replay, "
                       "endpoints, enable-endpoint")
    acts = p.add_subparsers(dest="action", required=True)
    q = acts.add_parser("list", help="list deliveries, newest first")
    common(q)
    q.add_argument("--status", choices=("pending", "delivered", "failed"))
    q.add_argument("--subscriber")
    q.add_argument("--endpoint", help="endpoint key (see `deliveries endpoints`)")
    q.add_argument("--limit", type=int, default=50)
    q = acts.add_parser("show", help="one delivery with every attempt")
    common(q)
    q.add_argument("id")
    q = acts.add_parser("retry", help="queue one delivery again (same webhook-id)")
    common(q)
    q.add_argument("id")
    q = acts.add_parser("replay", help="queue again every failed delivery since a time")
    common(q)
    q.add_argument("--since", required=True, help="ISO 8601 (2026-11-01T10:00:00Z) or epoch")
    q.add_argument("--subscriber")
    q.add_argument("--endpoint")
    q = acts.add_parser("endpoints", help="webhook endpoints and their health")
    common(q)
    q = acts.add_parser("enable-endpoint", help="enable a disabled endpoint again")
    common(q)
    q.add_argument("key")
    q.add_argument("--subscriber")
    p.set_defaults(func=cmd_deliveries)

    p = sub.add_parser("check-config", help="validate a config file and its locales")
    p.add_argument("path", nargs="?", default=DEFAULT_CONFIG)
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("hash-secret", help="print secret_sha256 for a subscriber secret")
    p.add_argument("secret", nargs="?", help="the secret (read from stdin when absent)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_hash_secret)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
