"""The web dashboard: one static page at ``/`` and ``/dashboard``, its assets under ``/ui/``.

The page is a prebuilt bundle committed in ``pipeline/api/dashboard/`` (sources and build in
``frontend/``), so serving it needs neither npm nor network access. The page and its assets
hold no data and stay open; everything the page shows comes from the API, which applies the
usual read/write token rules to each request. The router also carries the opt-in frame
snapshot route (:mod:`pipeline.api.routers.snapshot`), behind the read rule.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from pipeline.api.auth import ReadAuth
from pipeline.api.routers import snapshot

router = APIRouter()

#: Assets the page may load; anything else under /ui/ is a 404 (no directory walking).
_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
    "THIRD_PARTY_LICENSES.txt": "text/plain; charset=utf-8",
}

# Defence in depth against injected markup: no inline scripts or handlers, nothing off-origin.
# blob: serves the snapshot image, which is fetched with the token and shown as an object URL.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page is tiny and changes with each release; revalidating keeps upgrades visible.
    "Cache-Control": "no-cache",
}


def dashboard_dir() -> Path:
    """Folder of the built dashboard inside the installed package."""
    return Path(str(resources.files("pipeline.api") / "dashboard"))


@router.get("/", response_class=FileResponse, include_in_schema=False)
@router.get("/dashboard", response_class=FileResponse, include_in_schema=False)
def dashboard_page() -> FileResponse:
    """The single-page dashboard."""
    return FileResponse(dashboard_dir() / "index.html", media_type="text/html; charset=utf-8",
                        headers=_PAGE_HEADERS)


@router.get("/ui/{name}", response_class=FileResponse, include_in_schema=False)
def dashboard_asset(name: str) -> FileResponse:
    """One bundled asset (script, stylesheet, icon, third-party licences)."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail="no such dashboard asset")
    return FileResponse(dashboard_dir() / name, media_type=media_type, headers=_PAGE_HEADERS)


# The snapshot is data (it may show people): it reads behind the same rule as every other read.
router.include_router(snapshot.router, dependencies=[ReadAuth])
