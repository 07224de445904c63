"""The API's own documentation pages, /docs (Swagger UI) and /redoc (ReDoc), served entirely from
this package.

FastAPI's default pages load Swagger UI and ReDoc from cdn.jsdelivr.net, fonts from Google and a
favicon from fastapi.tiangolo.com. NHS networks often block CDNs, and a page that silently loads
third-party code is not one a trust's IT can sign off, so the app is created with
`docs_url=None, redoc_url=None` and `install` adds the pages back with every asset taken from the
copies vendored in `api/static/docs/` (see the README.md there for versions, licences and how to
refresh them), as in FastAPI's "Self-hosting JavaScript and CSS for docs".

Two run-time fetches are inside the bundles themselves, and are turned off here: Swagger UI's
online validator badge (`validatorUrl: null`), and the Redocly logo that ReDoc 2.x draws in its
side menu from cdn.redoc.ly, which no option turns off. For that (and anything a future bundle
adds), the pages are served with a Content-Security-Policy that lets the browser load only from
this origin: the logo's request is refused by the browser before it is made, and ReDoc hides the
image when it fails to load.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).resolve().parent / "static" / "docs"
ASSETS_URL = "/static/docs"
DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
REDOC_URL = "/redoc"

# Only this origin, for everything. The inline allowances are what the pages need: FastAPI's page
# starts Swagger UI from an inline script, both UIs set inline styles, Swagger UI's CSS draws its
# icons as data: images, and ReDoc runs its search index in a worker made from a blob: URL.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'self'")


def _same_origin_only(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


def _root_path(request: Request) -> str:
    """The prefix a proxy mounts the app under (uvicorn --root-path), as FastAPI's own pages use."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def install(app: FastAPI) -> None:
    """Add /docs, /docs/oauth2-redirect and /redoc, and serve their assets at /static/docs.

    The app must have been created with `docs_url=None, redoc_url=None` (otherwise FastAPI's own
    CDN-loading pages are registered first and win).
    """
    if app.docs_url or app.redoc_url:
        raise RuntimeError("create the app with docs_url=None, redoc_url=None: its docs pages are installed here")
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise RuntimeError("the docs pages need the app's OpenAPI document (openapi_url is None)")
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return _same_origin_only(get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon-32x32.png",
            # Otherwise Swagger UI may send the document to validator.swagger.io for its badge.
            swagger_ui_parameters={"validatorUrl": None},
        ))

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return _same_origin_only(get_swagger_ui_oauth2_redirect_html())

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return _same_origin_only(get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon-32x32.png",
            with_google_fonts=False,
        ))
