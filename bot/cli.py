"""The `wagate` command: serve, and the admin's tools over the admin API."""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import json
import logging
import os
import signal
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

# Read from the working directory when neither --config nor WAGATE_CONFIG says.
DEFAULT_CONFIG = "config.example.toml"


def config_path(args: argparse.Namespace) -> str:
    """--config (before or after the command), else $WAGATE_CONFIG, else
    ./config.example.toml; a file that is not there is a clear error."""
    given = getattr(args, "config", None)
    from_env = os.environ.get("WAGATE_CONFIG")
    path = given or from_env or DEFAULT_CONFIG
    if Path(path).is_file():
        return path
    if given:
        where = "(from --config)"
    elif from_env:
        where = "(from WAGATE_CONFIG)"
    else:
        raise SystemExit(f"error: no config file: looked for {Path.cwd() / DEFAULT_CONFIG} "
                         "(the default); pass --config PATH or set WAGATE_CONFIG")
    raise SystemExit(f"error: config file not found: {path} {where}")


def _load(args: argparse.Namespace) -> Any:
    from bot.config import ConfigError
    from bot.config.load import load_config

    try:
        return load_config(config_path(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


# ------------------------------------------------------------------ serve


def setup_logging(level: str, fmt: str) -> None:
    from bot.logs import configure

    configure(level=level, fmt=fmt)


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.roles import Roles

    setup_logging(args.log_level, args.log_format)
    config = _load(args)
    if args.workers is not None:
        return _supervise(args, config)
    supervised = args.supervised is not None  # a child of `serve --workers N`
    if not supervised:  # its supervisor checked the port (its children share it)
        try:
            check_can_listen(config.server.host, config.server.port)
        except CannotListen as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    # A group's pid file is its supervisor's: SIGHUP there reaches every process.
    pid_file = None if supervised else config.server.pid_file
    return run_process(args, config, Roles(drainers=not args.no_drainers, group=_group(args)),
                       pid_file=pid_file, started=f"wagate serving on http://"
                       f"{config.server.host}:{config.server.port} "
                       f"({len(config.instances)} instance(s))")


def cmd_worker(args: argparse.Namespace) -> int:
    """The queue drainers alone: no HTTP listener."""
    from bot.roles import Roles

    setup_logging(args.log_level, args.log_format)
    config = _load(args)
    return run_process(args, config, Roles(http=False, group=_group(args)), pid_file=None,
                       started=f"wagate worker (pid {os.getpid()}): sending and delivering "
                       f"from the queues of {config.path}")


def run_process(args: argparse.Namespace, config: Any, roles: Any, *, pid_file: str | None,
                started: str) -> int:
    """Lock the store (unless a supervisor holds the lock for this process),
    build the app for `roles` and run it. Before anything starts: a second
    wagate on a SQLite file in use must not open the store, start workers or
    touch the first one's pid file."""
    from aiohttp import web

    from bot import heap
    from bot.app import create_app
    from bot.locales import LocaleError
    from bot.processes import remove_pid_file, write_pid_file
    from bot.store.lock import StoreInUse, lock_for

    try:
        lock = None if args.supervised is not None else lock_for(config.storage)
    except StoreInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # The store's thread hands results back to the event loop many times a
    # second; the default 5 ms GIL switch interval makes each hand-off wait.
    sys.setswitchinterval(float(os.environ.get("WAGATE_SWITCH_INTERVAL", "0.0005")))
    try:
        try:
            app = create_app(config, roles)
        except (LocaleError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        log = logging.getLogger("wagate")

        async def on_startup(app: web.Application) -> None:
            if pid_file:
                write_pid_file(pid_file)
            heap.freeze()
            log.info("%s", started)

        async def on_cleanup(app: web.Application) -> None:
            if pid_file:
                remove_pid_file(pid_file)
            log.info("wagate stopped" if roles.http else "wagate worker stopped")

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return run_app(app, config, listen=roles.http, supervisor_fd=args.supervised)
    finally:
        if lock is not None:
            lock.release()


def _group(args: argparse.Namespace) -> Any:
    """The group a child of `serve --workers N` belongs to (None outside one)."""
    from bot.roles import Group

    if args.supervised is None:
        return None
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not metrics_dir:
        raise SystemExit("error: --supervised is for the processes `wagate serve --workers N` "
                         "starts")
    return Group(http_processes=args.group_size, metrics_dir=metrics_dir,
                 supervisor_pid=os.getppid(), worker_id=args.worker_id)


def _supervise(args: argparse.Namespace, config: Any) -> int:
    """`serve --workers N`: the supervisor, which opens no store itself."""
    from bot.processes import Supervisor
    from bot.store.lock import StoreInUse, lock_for

    count = args.workers
    if count < 1 or args.supervised is not None:
        print("error: --workers takes a number of processes, 1 or more", file=sys.stderr)
        return 2
    if count > 1 and config.storage.url.startswith("sqlite:"):
        print(f"error: --workers {count} needs PostgreSQL: SQLite allows one process per "
              f"file ({config.storage.sqlite_path}); use --workers 1, or [storage] url = "
              '"postgresql://..."', file=sys.stderr)
        return 2
    try:
        check_can_listen(config.server.host, config.server.port)
        lock = lock_for(config.storage)
    except (CannotListen, StoreInUse) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        supervisor = Supervisor(config, count, ["--log-level", args.log_level,
                                                "--log-format", args.log_format],
                                keep_fds=(lock.fd,) if lock else ())
        return asyncio.run(supervisor.run())
    finally:
        if lock is not None:
            lock.release()


def run_app(app: Any, config: Any, *, listen: bool, supervisor_fd: int | None) -> int:
    """Run `app` until SIGTERM or SIGINT (or, for a child of `serve --workers N`,
    until its supervisor is gone); SIGHUP reloads. With `listen`, on the
    configured address (shared with the group's other processes, SO_REUSEPORT,
    when supervised)."""
    from aiohttp import web

    from bot.web.keys import inflight_key, reloader_key
    from bot.web.server import make_runner

    log = logging.getLogger("wagate")
    timeout = config.server.shutdown_timeout

    async def serve() -> None:
        """SIGTERM or SIGINT: stop accepting, let every request in flight finish
        (its body still uploading included) for up to shutdown_timeout, then
        aiohttp's cleanup: idle connections closed, the workers stopped (sends
        under way finish, claims released), the store closed. A second signal
        skips the wait."""
        runner = make_runner(app, shutdown_timeout=timeout)
        loop = asyncio.get_running_loop()

        def on_sighup() -> None:
            log.info("SIGHUP: reloading %s", config.path)
            app[reloader_key].request()  # a burst of signals coalesces

        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        stopping, hurry = asyncio.Event(), asyncio.Event()

        def on_stop(why: str) -> None:
            if stopping.is_set():
                log.warning("%s again: stopping without waiting", why)
                hurry.set()
                return
            log.info("%s: stopping; no new connections, %d request(s) in flight",
                     why, app[inflight_key].count)
            stopping.set()

        # Before the startup: a SIGTERM while the store opens (a restarted
        # child of a group being stopped) still ends in a clean stop.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop, sig.name)
        await runner.setup()
        try:
            site = None
            if listen and not stopping.is_set():
                site = web.TCPSite(runner, config.server.host, config.server.port,
                                   reuse_port=True if supervisor_fd is not None else None)
                try:
                    await site.start()
                except OSError as exc:  # taken since the check: said the same way
                    raise CannotListen(config.server.host, config.server.port, exc) from None
            if supervisor_fd is not None:
                watch_supervisor(loop, supervisor_fd, lambda: on_stop("supervisor gone"))
            await stopping.wait()
            inflight = app[inflight_key]
            inflight.draining = True
            if site is not None:
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
    from bot.store import StoreUnavailable

    try:
        with asyncio.Runner(loop_factory=new_event_loop) as loop_runner:
            loop_runner.run(serve())
    except (CannotListen, StoreUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def watch_supervisor(loop: asyncio.AbstractEventLoop, fd: int, gone: Any) -> None:
    """Call `gone` once the supervisor's end of the pipe closes (it died)."""
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            if os.read(fd, 64):
                return  # nothing is ever written; ignore
        except BlockingIOError:
            return
        loop.remove_reader(fd)
        gone()

    loop.add_reader(fd, readable)


class CannotListen(Exception):
    def __init__(self, host: str, port: int, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        shown = f"[{host}]" if ":" in host else (host or "*")
        super().__init__(f"cannot listen on {shown}:{port}: {reason[:1].lower()}{reason[1:]}")


def check_can_listen(host: str, port: int) -> None:
    """Bind (and let go of) every address the server will listen on, as it
    will (SO_REUSEADDR, IPv6 only on IPv6 sockets); raises CannotListen."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise CannotListen(host, port, exc) from None
    for family, kind, proto, _, address in dict.fromkeys(infos):
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
        except OSError as exc:
            raise CannotListen(host, port, exc) from None


# ------------------------------------------------------------------ admin client


def _base_url(config: Any) -> str:
    host = config.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    return f"http://{host}:{config.server.port}"


def _call(config: Any, method: str, path: str, body: Any = None,
          params: dict[str, Any] | None = None, url: str | None = None,
          headers: dict[str, str] | None = None) -> Any:
    """One request to the running service (the admin token unless `headers`
    say otherwise); an error answer exits with its status and error_message."""
    import aiohttp

    if headers is None:
        headers = {"Authorization": f"Bearer {config.admin_token}"}

    async def go() -> Any:
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
    config = _load(args)
    if args.status:
        return _simulate_status(config, args)
    if args.message or args.error_code is not None or args.error_title:
        raise SystemExit("error: --message, --error-code and --error-title go with --status")
    if not args.sender or args.text is None:
        raise SystemExit("error: say who writes what: --from NUMBER TEXT "
                         "(or --status STATUS --message ID)")
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


def _simulate_status(config: Any, args: argparse.Namespace) -> int:
    """A provider's status for a sandbox message (POST /sandbox/status)."""
    if not args.message:
        raise SystemExit("error: --status needs --message ID (from `wagate send` or "
                         "`wagate outbox --json`)")
    if args.sender or args.text is not None:
        raise SystemExit("error: --status reports on a sent message: no --from or TEXT")
    body: dict[str, Any] = {"id": args.message, "status": args.status}
    if args.error_code is not None or args.error_title:
        body["error"] = {"code": args.error_code, "title": args.error_title}
    data = _call(config, "POST", "/sandbox/status", body, url=args.url)
    status = data["message"]["status"]
    _print(data, args, [f"message {args.message}: {status}" + (
        "" if data["applied"] else f" (unchanged: {args.status} does not move it on)")])
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    """A text message through the service's own send API, as a subscriber."""
    config = _load(args)
    client_id, secret = _credentials(config, args)
    headers = {"X-WM-CLIENT-ID": client_id, "X-WM-CLIENT-SECRET": secret}
    data = _call(config, "POST", f"/v3/whatsapp/single/text/message/{args.instance}",
                 {"number": args.to, "message": args.text}, url=args.url, headers=headers)
    if args.wait:
        data = _wait_sent(config, args, data["id"], headers)
    _print(data, args, [f"{data['id']}  {data['status']}"])
    return 0


def _wait_sent(config: Any, args: argparse.Namespace, message_id: str,
               headers: dict[str, str]) -> Any:
    """The message as the send API shows it once it left the queue (at most 10 s)."""
    import time

    deadline = time.monotonic() + 10
    while True:
        data = _call(config, "GET", f"/v3/whatsapp/messages/{message_id}", url=args.url,
                     headers=headers)
        if data["status"] != "queued" or time.monotonic() > deadline:
            return data
        time.sleep(0.1)


def _credentials(config: Any, args: argparse.Namespace) -> tuple[str, str]:
    """--client-id/--client-secret, else $WAGATE_CLIENT_ID/$WAGATE_CLIENT_SECRET,
    else a subscriber whose secret the config file holds (`secret`, or
    `secret_env` set here): the one with that client id, or the first that may
    use the instance. The parsed config keeps only hashes: the file is read."""
    import tomllib

    client_id = args.client_id or os.environ.get("WAGATE_CLIENT_ID")
    secret = args.client_secret or os.environ.get("WAGATE_CLIENT_SECRET")
    if client_id and secret:
        return client_id, secret
    instance = config.instances.get(args.instance)
    with open(config.path, "rb") as fh:
        tables = tomllib.load(fh).get("subscribers", [])
    for table in tables if isinstance(tables, list) else []:
        sub = config.subscribers.get(table.get("id"))
        found = table.get("secret") or os.environ.get(table.get("secret_env") or "")
        if sub is None or not isinstance(found, str) or not found:
            continue
        if client_id and sub.client_id == client_id:
            return client_id, found
        if not client_id and (args.instance in sub.instances
                              or (instance is not None and instance.owner == sub.id)):
            return sub.client_id, found
    wanted = f"client id {client_id}" if client_id else f"instance {args.instance}"
    raise SystemExit(f"error: no credentials: pass --client-id and --client-secret (or set "
                     f"WAGATE_CLIENT_ID and WAGATE_CLIENT_SECRET); {config.path} holds no "
                     f"subscriber secret for {wanted}")


def cmd_outbox(args: argparse.Namespace) -> int:
    config = _load(args)
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


def _registration_line(r: dict[str, Any]) -> str:
    """Active since it registered, opted out since it opted out."""
    since = r["registered_at"] if r["status"] == "active" else r.get("opted_out_at")
    return (f"#{r['instance']}  {r['number']:<16} {r['locale']:<8} {r['status']:<10} "
            f"since {since or r['updated_at']}")


def cmd_registrations(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.opt_out:
        if not args.number:
            raise SystemExit("error: --opt-out needs a number")
        data = _call(config, "POST", f"/admin/registrations/{args.number}/opt-out",
                     params={"instance": args.instance}, url=args.url)
        lines = [f"opted out on {data['changed']} instance(s) "
                 f"({len(data['registrations']) - data['changed']} already opted out)"]
        lines += [_registration_line(r) for r in data["registrations"]]
        _print(data, args, lines)
        return 0
    if args.number:
        data = _call(config, "GET", f"/admin/registrations/{args.number}", url=args.url)
    else:
        data = _call(config, "GET", "/admin/registrations",
                     params={"instance": args.instance, "status": args.status,
                             "limit": args.limit}, url=args.url)
    lines = [_registration_line(r) for r in data["registrations"]]
    _print(data, args, lines)
    return 0


def cmd_messages(args: argparse.Namespace) -> int:
    config = _load(args)
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
    config = _load(args)
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

    config = _load(args)
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
    profiles = (ready.get("details") or {}).get("profiles") or {}
    if profiles:
        lines.append("profiles: " + ", ".join(_profile_state_line(int(i), s)
                                             for i, s in profiles.items()))
    _print(data, args, lines)
    return 0 if ready.get("status") == "ready" else 1


def _profile_state_line(instance: int, state: dict[str, Any]) -> str:
    applied = ", ".join(state.get("applied") or []) or "nothing"
    line = f"#{instance} {state['status']} ({applied}; from {state['source']})"
    if state.get("not_supported"):
        line += f", not supported: {', '.join(state['not_supported'])}"
    return line + (f": {state['error']}" if state.get("error") else "")


# ---- the gateway number's business profile


def cmd_profile(args: argparse.Namespace) -> int:
    config = _load(args)
    path = f"/admin/instances/{args.instance}/profile"
    if args.action == "show":
        data = _call(config, "GET", path, url=args.url)
    else:
        body: dict[str, Any] = {k: v for k, v in (
            ("about", args.about), ("description", args.description), ("email", args.email),
            ("websites", args.website)) if v is not None}
        if args.picture:
            try:
                body["picture"] = base64.b64encode(Path(args.picture).read_bytes()).decode()
            except OSError as exc:
                raise SystemExit(f"error: cannot read {args.picture}: {exc.strerror}") from None
        data = _call(config, "PUT", path, body, url=args.url)
    profile, state = data["profile"], data["state"]
    lines = [f"instance #{data['instance']} ({data['provider']}): "
             + (f"profile from {data['source']}" if profile else "no profile set")]
    if profile:
        picture = profile["picture"]
        lines += [f"  {name}: {profile[name]}" for name in ("about", "description", "email")
                  if profile[name]]
        if profile["websites"]:
            lines.append("  websites: " + " ".join(profile["websites"]))
        if picture:
            lines.append(f"  picture: {picture['type']}, {picture['bytes']} bytes")
    lines.append("  supported by the provider: " + (", ".join(data["supported_fields"])
                                                     or "nothing (not offered by its API)"))
    if state:
        lines.append("  last applied: " + _profile_state_line(data["instance"], state))
    _print(data, args, lines)
    return 0 if state is None or state["status"] in ("applied", "partial") else 1


# ---- webhooks: deliveries and endpoints


def _delivery_line(d: dict[str, Any]) -> str:
    last = d["last_error"] or (f"HTTP {d['last_status_code']}" if d["last_status_code"] else "")
    return (f"{d['created_at']}  {d['id']}  {d['subscriber']:<10} {d['type']:<18} "
            f"{d['status']:<9} x{d['attempts']}  {d['endpoint']['url']}"
            + (f"\n    {last}" if last and d["status"] != "delivered" else ""))


def cmd_deliveries(args: argparse.Namespace) -> int:
    config = _load(args)
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

    path = args.path or config_path(args)
    try:
        snap = load_snapshot(path)
    except (ConfigError, LocaleError) as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    c = snap.config
    notes = _profile_notes(c)
    data = {"ok": True, "path": path, "instances": len(c.instances),
            "subscribers": len(c.subscribers), "plans": len(c.plans),
            "locales": sorted(snap.locales.locales), "notes": notes}
    _print(data, args, [f"{path}: OK — {len(c.instances)} instance(s), "
                        f"{len(c.subscribers)} subscriber(s), {len(c.plans)} plan(s), "
                        f"{len(snap.locales.locales)} locale(s)"]
           + [f"note: {n}" for n in notes])
    return 0


def _profile_notes(config: Any) -> list[str]:
    """What a configured profile will not do, said plainly (never an error)."""
    from bot.profile import lost_fields
    from bot.providers.registry import PROVIDERS

    by_name = {p.name: p for p in PROVIDERS}
    notes = []
    for inst in config.instances.values():
        provider = by_name[inst.provider]
        if inst.profile is None:
            continue
        if provider.make_profiler is None:
            notes.append(f"instance {inst.id}: provider {inst.provider} cannot set the business "
                         "profile (its API does not offer it); [instances.profile] is not applied")
        elif lost := lost_fields(provider, inst.profile):
            notes.append(f"instance {inst.id}: provider {inst.provider} cannot set "
                         f"{', '.join(lost)}; those profile fields are not applied")
    return notes


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


def cmd_migrate_store(args: argparse.Namespace) -> int:
    """Copy a SQLite store into an empty PostgreSQL one (see bot/store/migrate.py)."""
    from bot.config import postgres_driver_missing

    if missing := postgres_driver_missing():
        print(f"error: {missing}", file=sys.stderr)
        return 1
    from bot.store.migrate import NOT_COPIED, MigrationRefused, migrate_store

    def progress(line: str) -> None:
        print(f"copying... {line}", file=sys.stderr, flush=True)

    # Progress for a person at a terminal; a refusal stays the one line.
    shown = sys.stderr.isatty() and not args.json
    try:
        report = asyncio.run(migrate_store(args.source, args.target, dry_run=args.dry_run,
                                           progress=progress if shown else None))
    except MigrationRefused as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = {"ok": True, "dry_run": report.dry_run, "tables": report.counts,
            "claims_cleared": report.claims, "not_copied": list(NOT_COPIED)}
    _print(data, args, report.lines(args.source, args.target))
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wagate")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    from bot.events import STATUSES

    parser = argparse.ArgumentParser(
        prog="wagate", description="Self-hosted WhatsApp gateway: the service and its tools.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  wagate --config /etc/wagate/wagate.toml status\n"
               "  wagate COMMAND --help   (each command's options, with an example)")
    parser.add_argument("--version", action="version", version=f"wagate {_version()}",
                        help="print the version and exit")
    parser.add_argument("--config", metavar="PATH", help="config file (TOML); also "
                        "accepted after the command (default: $WAGATE_CONFIG, else "
                        "./config.example.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(sub: Any, name: str, help_text: str, example: str,
                func: Any = None) -> argparse.ArgumentParser:
        about = textwrap.fill(help_text[:1].upper() + help_text[1:] + ".", 78)
        p = sub.add_parser(name, help=help_text, description=about,
                           epilog="example:\n  " + example,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if func is not None:
            p.set_defaults(func=func)
        return p

    def common(p: argparse.ArgumentParser, *, client: bool = True) -> None:
        # SUPPRESS: given here it wins; absent, the one before the command stands.
        p.add_argument("--config", default=argparse.SUPPRESS, metavar="PATH",
                       help="config file (TOML): finds the service and its admin token")
        if client:
            p.add_argument("--url", help="URL of the running service "
                           "(default: from [server] in the config)")
            p.add_argument("--json", action="store_true", help="print JSON for scripts")

    def log_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--log-level", default=os.environ.get("WAGATE_LOG_LEVEL", "INFO"),
                       help="DEBUG, INFO, WARNING or ERROR (default: $WAGATE_LOG_LEVEL, "
                       "else INFO)")
        p.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="text for people, json (one object a line) for log collectors")

    def supervised(p: argparse.ArgumentParser) -> None:
        # Set by `serve --workers N` on the processes it starts, not by people.
        p.add_argument("--supervised", type=int, metavar="FD", help=argparse.SUPPRESS)
        p.add_argument("--group-size", type=int, default=1, help=argparse.SUPPRESS)
        p.add_argument("--worker-id", help=argparse.SUPPRESS)

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print JSON for scripts")

    def limit(p: argparse.ArgumentParser, default: int) -> None:
        p.add_argument("--limit", type=int, default=default,
                       help=f"at most this many rows (default {default})")

    p = command(sub, "serve", "run the service",
                "wagate serve --config /etc/wagate/wagate.toml --log-format json", cmd_serve)
    common(p, client=False)
    log_options(p)
    p.add_argument("--workers", type=int, metavar="N",
                   help="run N HTTP processes sharing the port, plus the queue drainers, "
                   "under a supervisor (more than 1 needs PostgreSQL); default: one process")
    supervised(p)
    p.add_argument("--no-drainers", action="store_true", help=argparse.SUPPRESS)

    p = command(sub, "worker", "run the queue drainers alone (outbound sender, webhook "
                "deliverer), with no HTTP listener, e.g. on another host sharing the "
                "PostgreSQL database", "wagate worker --config /etc/wagate/wagate.toml",
                cmd_worker)
    common(p, client=False)
    log_options(p)
    supervised(p)

    p = command(sub, "simulate", "be a user writing to a sandbox number, or a provider "
                "reporting a sent message's status",
                'wagate simulate --from +34600000001 "Hola"\n'
                "  wagate simulate --status delivered --message 0b8f5f4e-...", cmd_simulate)
    common(p)
    p.add_argument("--instance", type=int, default=1,
                   help="the sandbox instance written to (default 1)")
    p.add_argument("--from", dest="sender", help="the user's number, e.g. +34600000001")
    p.add_argument("--name", help="the user's profile name")
    p.add_argument("--id", help="provider message id (generated when absent)")
    p.add_argument("--group-id", help="say it in this group")
    p.add_argument("--group-name", help="the group's name")
    p.add_argument("--status", choices=STATUSES,
                   help="instead: report this status for the sent message --message, "
                   "as a provider would (webhooks included)")
    p.add_argument("--message", metavar="ID",
                   help="with --status: the message's id (from `wagate send` or the outbox)")
    p.add_argument("--error-code", type=int, help="with --status failed: the error code")
    p.add_argument("--error-title", help="with --status failed: the error's title")
    p.add_argument("text", nargs="?", help="what the user writes")

    p = command(sub, "send", "send a text to a registered user through the service's own "
                "send API, as a subscriber (a quick test)",
                'wagate send --to +34600000001 "Your order has shipped (y)"', cmd_send)
    common(p)
    p.add_argument("--to", required=True, help="the recipient, with country code; it must "
                   "have said Hi to the instance")
    p.add_argument("--instance", type=int, default=1, help="the instance sent from (default 1)")
    p.add_argument("--client-id", help="the subscriber's client id (default: "
                   "$WAGATE_CLIENT_ID, else the first subscriber whose secret is in the "
                   "config file and who may use the instance)")
    p.add_argument("--client-secret", help="its secret (default: $WAGATE_CLIENT_SECRET, "
                   "else from the config file; prefer the variable: arguments show in ps)")
    p.add_argument("--wait", action="store_true",
                   help="wait (at most 10 s) until the message has left the queue")
    p.add_argument("text", help="the message (emoji shortcuts such as (y) are converted)")

    p = command(sub, "outbox", "list messages sent on sandbox numbers, newest first",
                "wagate outbox --to +34600000001", cmd_outbox)
    common(p)
    p.add_argument("--to", help="only those to this number")
    p.add_argument("--instance", type=int, help="only those from this instance")
    limit(p, 20)

    p = command(sub, "registrations", "list registrations, show one number's, or opt a "
                "number out", "wagate registrations +34600000001 --opt-out",
                cmd_registrations)
    common(p)
    p.add_argument("number", nargs="?", help="show (or with --opt-out, opt out) this number")
    p.add_argument("--instance", type=int, help="only on this instance")
    p.add_argument("--status", choices=("active", "opted_out"), help="only with this status")
    limit(p, 100)
    p.add_argument("--opt-out", action="store_true",
                   help="opt NUMBER out by hand (on --instance, else on every instance)")

    p = command(sub, "messages", "the message log, both directions, newest first",
                "wagate messages --direction in --number +34600000001", cmd_messages)
    common(p)
    p.add_argument("--direction", choices=("in", "out"), help="only received or only sent")
    p.add_argument("--number", help="only to or from this number")
    p.add_argument("--instance", type=int, help="only on this instance")
    limit(p, 50)

    p = command(sub, "reload", "reload the running service's config and locales",
                "wagate reload --config /etc/wagate/wagate.toml", cmd_reload)
    common(p)
    p.add_argument("--signal", action="store_true",
                   help="send SIGHUP to the pid in [server] pid_file instead of the admin API")

    p = command(sub, "status", "readiness and the config in force (exit 1 when not ready)",
                "wagate status --json", cmd_status)
    common(p)

    p = command(sub, "deliveries", "webhook deliveries: list, show, retry, replay, "
                "endpoints, enable-endpoint", "wagate deliveries list --status failed",
                cmd_deliveries)
    common(p, client=False)
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = command(acts, "list", "list deliveries, newest first",
                "wagate deliveries list --status failed --subscriber acme")
    common(q)
    q.add_argument("--status", choices=("pending", "delivered", "failed"),
                   help="only with this status")
    q.add_argument("--subscriber", help="only this subscriber's")
    q.add_argument("--endpoint", help="only this endpoint's (its key: `deliveries endpoints`)")
    limit(q, 50)
    q = command(acts, "show", "one delivery with every attempt",
                "wagate deliveries show msg_5f0c9d1e...")
    common(q)
    q.add_argument("id", help="the delivery's id (its webhook-id)")
    q = command(acts, "retry", "queue one delivery again (same webhook-id)",
                "wagate deliveries retry msg_5f0c9d1e...")
    common(q)
    q.add_argument("id", help="the delivery's id (its webhook-id)")
    q = command(acts, "replay", "queue again every failed delivery since a time",
                "wagate deliveries replay --since 2026-11-24T08:00:00Z")
    common(q)
    q.add_argument("--since", required=True, help="ISO 8601 (2026-11-01T10:00:00Z) or epoch")
    q.add_argument("--subscriber", help="only this subscriber's")
    q.add_argument("--endpoint", help="only this endpoint's (its key)")
    q = command(acts, "endpoints", "webhook endpoints and their health",
                "wagate deliveries endpoints")
    common(q)
    q = command(acts, "enable-endpoint", "enable a disabled endpoint again",
                "wagate deliveries enable-endpoint 3f2a9c0d1e2b4a5c")
    common(q)
    q.add_argument("key", help="the endpoint's key (see `deliveries endpoints`)")
    q.add_argument("--subscriber", help="the subscriber, when two share the endpoint's URL")

    p = command(sub, "migrate-store", "copy a SQLite store (registrations, groups, messages, "
                "queues, deliveries, usage) into an empty PostgreSQL database, in one "
                "transaction; stop wagate on the SQLite file first",
                "wagate migrate-store --from sqlite:///var/lib/wagate/wagate.db \\\n"
                "      --to postgresql://wagate@db.internal:5432/wagate", cmd_migrate_store)
    p.add_argument("--from", dest="source", required=True, metavar="sqlite:///PATH",
                   help="the SQLite store (opened read-only; refused while a wagate uses it)")
    p.add_argument("--to", dest="target", required=True, metavar="postgresql://...",
                   help="the PostgreSQL store; it must hold no data (tables are created)")
    p.add_argument("--dry-run", action="store_true",
                   help="check and count what would be copied; write nothing")
    json_flag(p)
    p = command(sub, "profile", "the gateway number's business profile: show, set",
                'wagate profile set 2 --about "Order updates" --picture logo.jpg', cmd_profile)
    common(p, client=False)
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = command(acts, "show", "the profile in force and how its last application went",
                "wagate profile show 2")
    common(q)
    q.add_argument("instance", type=int, help="the instance (gateway number) id")
    q = command(acts, "set", "set the profile now (until the service stops; the config's "
                "[instances.profile] is the lasting one) and apply it through the provider",
                'wagate profile set 2 --about "Order updates" --website https://acme.example')
    common(q)
    q.add_argument("instance", type=int, help="the instance (gateway number) id")
    q.add_argument("--about", help="the about text (at most 139 characters)")
    q.add_argument("--description", help="the business description (at most 512 characters)")
    q.add_argument("--email", help="the contact email")
    q.add_argument("--website", action="append", help="a website (at most two; repeat)")
    q.add_argument("--picture", metavar="FILE", help="a JPEG or PNG file")

    p = command(sub, "check-config", "validate a config file and its locales offline",
                "wagate check-config /etc/wagate/wagate.toml", cmd_check_config)
    p.add_argument("path", nargs="?", help="the file (default: --config, $WAGATE_CONFIG, "
                   "else ./config.example.toml)")
    p.add_argument("--config", default=argparse.SUPPRESS, metavar="PATH",
                   help="the same as PATH")
    json_flag(p)

    p = command(sub, "hash-secret", "print secret_sha256 for a subscriber secret",
                "wagate hash-secret < secret.txt", cmd_hash_secret)
    p.add_argument("secret", nargs="?", help="the secret (read from stdin when absent)")
    json_flag(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
