"""What keeps the local web app local and its uploads bounded.

`bpiml serve` has no login: it is meant for the annotator's own machine. Two attacks reach such a
server from an ordinary web page, and both are refused here, as Jupyter and other local servers do:
- **DNS rebinding**: a foreign name made to resolve to 127.0.0.1 lets a page read the app as if it
  were same-origin. Every request must name one of the server's own host names in ``Host``
  (localhost, 127.0.0.1, [::1], the ``--host`` it was started with, and any ``--allow-host``).
- **Cross-site writes**: a page can POST to 127.0.0.1 without reading the answer. A request that
  changes something must come from the app's own origin: an ``Origin`` other than the ``Host``
  asked for, or ``Sec-Fetch-Site: cross-site``, is refused. Clients that send neither (curl,
  scripts) are not browsers driven by a foreign page, and pass.
Every answer carries a content security policy that allows the app's own scripts only and no
framing. Uploads are read from the socket up to the cap and no further.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response

LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# the page's own scripts, styles and images (heat maps are blob: / data: URLs), never inside another site's frame
APP_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
              "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# a downloaded report is one self-contained page: inline styles and embedded images, nothing fetched, no scripts
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
MULTIPART_SLACK = 64 * 1024  # form boundaries and part headers around the file itself


def host_name(netloc: str) -> str:
    """The host name of a ``Host`` header or URL authority, lower case, without port or IPv6 brackets."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")] if "]" in netloc else netloc[1:]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def allowed_host_names(bind_host: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The names a request may address this server by: the local ones, the bound host and ``extra``."""
    names = set(LOCAL_NAMES) | {host_name(h) for h in extra if h.strip()}
    if bind_host not in WILDCARD_BINDS:
        names.add(host_name(bind_host))
    return frozenset(names)


def refusal(request_host: str, origin: str | None, fetch_site: str | None, method: str,
            allowed: frozenset[str]) -> str | None:
    """Why a request must be refused (None: it may go on). Pure, so the rules are tested apart from the app."""
    if host_name(request_host) not in allowed:
        return (f"this server does not answer to the host name {host_name(request_host)!r} (a page on another site "
                "may be trying to reach it); start bpiml serve with --allow-host NAME if that name is yours")
    if method.upper() in SAFE_METHODS:
        return None
    if fetch_site == "cross-site":
        return "a page on another site may not change anything here (Sec-Fetch-Site: cross-site)"
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or parts.netloc.lower() != request_host.strip().lower():
            return f"a page from {origin} may not change anything here; use the app's own page"
    return None


def local_only(allowed: frozenset[str]) -> Callable[[Request, Callable[[Request], Awaitable[Response]]],
                                                    Awaitable[Response]]:
    """HTTP middleware: refuse foreign hosts and cross-site writes (403), and add the security headers."""

    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        why = refusal(request.headers.get("host", ""), request.headers.get("origin"),
                      request.headers.get("sec-fetch-site"), request.method, allowed)
        response = JSONResponse({"detail": why}, status_code=403) if why else await call_next(request)
        response.headers.setdefault("Content-Security-Policy", APP_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return middleware


def content_disposition(filename: str) -> str:
    """An ``attachment`` header for any file name: an ASCII fallback plus the UTF-8 name (RFC 6266 / 5987),
    so that names such as ``фото.jpg`` download instead of failing."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def read_capped(request: Request, max_bytes: int, what: str = "upload") -> bytes:
    """The request body, read from the socket until ``max_bytes`` (plus the form's own overhead) and no further:
    a declared ``Content-Length`` over the cap is refused before reading, a chunked stream once it passes it."""
    limit = max_bytes + MULTIPART_SLACK
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"{what} is {int(declared) / 1e6:.1f} MB, over this server's upload limit of "
                                 f"{max_bytes / 2**20:g} MB (--max-upload-mb)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"{what} is over this server's upload limit of {max_bytes / 2**20:g} MB "
                                     "(--max-upload-mb); reading stopped there")
    return bytes(body)


async def replay(body: bytes) -> AsyncIterator[bytes]:
    """A body already read, as the byte stream a form parser expects."""
    yield body
