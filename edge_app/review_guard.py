"""What the review page's server checks before it answers, as a local notebook server does.

- A random token per run, in the URL the command opens and prints, is required on every
  request (`?token=`); without it the answer is 403, so another web page in the technician's
  browser cannot read or change the review.
- `Host` must name the address the server is bound to (DNS rebinding gets 403).
- The context picture of a cell is served only for a cell the report lists (`/context/ID`).
- A POST must come from the page itself: `Origin` (or, without one, `Referer`) is this server.
- A body has a `Content-Length` of at most `MAX_BODY` bytes, is read whole within
  `BODY_SECONDS` (no read waits longer than the socket timeout) and is ASCII form data with at
  most `MAX_FIELDS` fields named `c<id>`; anything else is a 4xx. Error answers carry a fixed
  reason phrase, never text from the request.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 2_000_000  # bytes of a Save (a 100,000-cell report's choices fit)
MAX_FIELDS = 200_000
REQUEST_TIMEOUT = 10.0  # seconds a client may stay silent (the socket's timeout)
BODY_SECONDS = 30.0  # seconds a client may take to send a whole body
MAX_CLIENTS = 16  # connections served at once; more are closed at once
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class Refused(Exception):
    """A request answered with `status` and a fixed `reason` (never echoed request text)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Guard:
    """The checks of one server: its token and the host:port it is bound to."""

    host: str
    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def hosts(self) -> set[str]:
        """Host header values that name this server."""
        names = {self.host}
        if self.host in LOOPBACK:
            names |= set(LOOPBACK)
        if ":" in self.host and not self.host.startswith("["):
            names.add(f"[{self.host}]")
        return {f"{h}:{self.port}" for h in names}

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}?token={self.token}"

    def check(self, method: str, path: str, headers) -> str:
        """The request's route (`/`, `/save`, `/sign`...) when it may be answered; else Refused."""
        host = headers.get("Host", "")
        if host not in self.hosts():
            raise Refused(403, "Forbidden: unknown Host")
        try:
            parts = urlsplit(path)
            query = parse_qs(parts.query, max_num_fields=4)
        except ValueError:
            raise Refused(400, "Bad Request") from None
        given = (query.get("token") or [""])[0]
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode()):
            raise Refused(403, "Forbidden: the page's token is missing or wrong")
        if method == "POST":
            origin = headers.get("Origin")
            if origin is not None:
                same = origin == f"http://{host}"
            else:
                referer = urlsplit(headers.get("Referer", ""))
                same = referer.scheme == "http" and referer.netloc == host
            if not same:
                raise Refused(403, "Forbidden: cross-origin request")
        return parts.path


def content_length(headers) -> int:
    """The body's declared size: digits only, at most MAX_BODY; else Refused."""
    text = headers.get("Content-Length")
    if text is None:
        raise Refused(411, "Length Required")
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise Refused(400, "Bad Request: Content-Length")
    n = int(text)
    if n > MAX_BODY:
        raise Refused(413, "Payload Too Large")
    return n


def read_body(rfile, length: int, seconds: float = BODY_SECONDS) -> bytes:
    """Exactly `length` bytes within `seconds` (each read also within the socket's timeout);
    a body cut short is 400, one sent too slowly 408."""
    deadline = time.monotonic() + seconds
    chunks, got = [], 0
    while got < length:
        if time.monotonic() > deadline:
            raise Refused(408, "Request Timeout")
        chunk = rfile.read1(min(65536, length - got))
        if not chunk:
            raise Refused(400, "Bad Request: the body was cut short")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def parse_form(body: bytes) -> dict[str, list[str]]:
    """A body of ASCII form data as {name: [values]} (blank values kept); Refused otherwise."""
    try:
        text = body.decode("ascii")
        return parse_qs(
            text,
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
            encoding="utf-8",
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "Bad Request: not form data") from None


def parse_choices(body: bytes) -> dict[str, str]:
    """The form's `c<id>=CLASS` fields as {id: class} ("" for not reviewed); other fields are
    ignored. Refused for a body that is not ASCII form data, or a field name that is not `c`
    and digits."""
    choices = {}
    for key, values in parse_form(body).items():
        if not key.startswith("c"):
            continue
        cid = key[1:]
        if not (cid.isascii() and cid.isdigit() and len(cid) <= 9) or len(values) != 1:
            raise Refused(400, "Bad Request: a field is not a cell choice")
        choices[str(int(cid))] = values[0]
    return choices


def form_text(body: bytes, name: str) -> str:
    """The one value of field `name` ("" when absent); Refused when it is given twice."""
    values = parse_form(body).get(name, [])
    if len(values) > 1:
        raise Refused(400, "Bad Request: a field is given twice")
    return values[0] if values else ""
