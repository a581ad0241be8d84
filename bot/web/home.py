"""`GET /`: the front door. A person who opens the service's address in a
browser sees where to go (the dashboard, the portal, the API docs, health);
a client that asks for JSON gets the same links as JSON."""

from __future__ import annotations

from html import escape

from aiohttp import web

from bot.web.operations import json_response

routes = web.RouteTableDef()

# (path, name, what it is for)
LINKS = (
    ("/ui/", "Dashboard", "for the operator: messages, registrations, deliveries "
     "(log in with the admin token)"),
    ("/portal/", "Portal", "for a subscriber: its own messages, deliveries and webhooks "
     "(log in with its client id and secret)"),
    ("/docs", "API docs", "the send, account and admin APIs, tried from the browser"),
    ("/openapi.json", "OpenAPI document", "the same APIs, for code generators"),
    ("/healthz", "Health", "alive"),
    ("/readyz", "Readiness", "the store reachable and the workers running"),
    ("/metrics", "Metrics", "Prometheus"),
)

HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff"}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wagate</title>
<link rel="stylesheet" href="/ui/static/style.css">
</head>
<body>
<main>
<h1>wagate</h1>
<p>A self-hosted WhatsApp gateway. Where to go from here:</p>
<ul class="front-door">
{items}
</ul>
</main>
</body>
</html>
"""


def _wants_json(request: web.Request) -> bool:
    """JSON only for a client that prefers it to HTML (a browser asks for HTML
    first; curl's `*/*` gets the page too)."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


@routes.get("/")
async def front_door(request: web.Request) -> web.Response:
    """The front door: links to the dashboard, the portal, the API docs and health."""
    if _wants_json(request):
        return json_response({"service": "wagate", "links": [
            {"href": path, "name": name, "about": about} for path, name, about in LINKS]})
    items = "\n".join(f'<li><a href="{path}">{escape(name)}</a>: {escape(about)}</li>'
                      for path, name, about in LINKS)
    return web.Response(text=PAGE.format(items=items), content_type="text/html",
                        headers=HEADERS)
