"""`GET /docs`: Swagger UI for /openapi.json, every asset served from the
`swagger-ui-py` package installed with wagate (nothing from a CDN). That
package ships Swagger UI 5, which reads OpenAPI 3.1 (`swagger-ui-bundle`'s
4.x refuses it)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from aiohttp import web

routes = web.RouteTableDef()

ASSETS = Path(str(files("swagger_ui") / "static"))
HERE = Path(__file__).parent / "ui" / "static"
# Only these files are served: the bundle and its stylesheet, and our start-up script.
FILES = {"swagger-ui.css": ASSETS, "swagger-ui-bundle.js": ASSETS,
         "favicon-32x32.png": ASSETS, "docs.js": HERE}
HEADERS = {
    # Swagger UI sets inline styles; scripts still come from here only.
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin"}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>wagate API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" href="/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/docs.js"></script>
</body>
</html>
"""


@routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers=HEADERS)


@routes.get("/docs/{name}")
async def asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    folder = FILES.get(name)
    if folder is None:
        raise web.HTTPNotFound()
    return web.FileResponse(folder / name, headers={"Cache-Control": "max-age=86400",
                                                    **HEADERS})
