"""Which article URLs are kept: http(s) links and site paths, nothing a browser would run.

An article's ``url`` ends up in an ``href`` on every page that lists it, so a value such as
``javascript:alert(1)`` would run script in the reader's browser. Browsers are lenient about
what counts as a scheme: they drop leading spaces and control characters, delete tabs and
newlines anywhere, and ignore case (`` \\tJaVa\\nScRiPt:``). Rather than list the dangerous
schemes, this module keeps only the forms known to be safe:

- an absolute ``http`` or ``https`` URL with a host (``https://example.com/a``); the scheme is
  lower-cased, the rest kept as given;
- a path on the site (``/2026/03/story.html``) or a protocol-relative URL with a host
  (``//example.com/a``): both stay on http(s) when a page links them.

Anything else — another scheme, a relative path such as ``story.html``, a control character
or backslash anywhere — is refused with a reason. Ingest keeps a refused value in the
article's metadata (``url_rejected``); the web layer can call :func:`safe_url` before it
writes a link.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["TRACKING_PARAMETERS", "canonical_url", "safe_url", "url_problem"]

#: Query parameters that say where a reader came from, not which page it is (``utm_*`` too).
TRACKING_PARAMETERS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "_ga", "_gl", "ocid"}
)

_SCHEMES = ("http", "https")
# RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# C0 and C1 controls and DEL: browsers strip or delete some of them, which is how
# "java\tscript:" becomes "javascript:". A backslash is a slash to a browser ("/\evil").
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def url_problem(value: str) -> str | None:
    """Why ``value`` (already stripped of outer whitespace) is not kept as a URL, or None.

    e.g. ``"scheme 'javascript' is not http or https"``. The empty string is no problem
    (there is no URL).
    """
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        char = bad.group()
        what = "a backslash" if char == "\\" else f"control character U+{ord(char):04X}"
        return f"{what} at character {bad.start() + 1}"
    if value.startswith("//"):
        return None if _has_host(value) else "protocol-relative URL without a host"
    if value.startswith("/") or not value:
        return None
    scheme = _SCHEME.match(value)
    if scheme is None:
        return "not an absolute http or https URL, nor a path starting with '/'"
    name = scheme.group(1).lower()
    if name not in _SCHEMES:
        return f"scheme {_shown(scheme.group(1))!r} is not http or https"
    if not value[scheme.end() :].startswith("//") or not _has_host(value):
        return f"{name} URL without a host"
    return None


def safe_url(value: str | None) -> str | None:
    """``value`` as a link that is safe to write in a page (scheme lower-cased), or None.

    Outer whitespace is stripped; None, empty and refused values give None.
    """
    if value is None:
        return None
    value = value.strip()
    if not value or url_problem(value) is not None:
        return None
    scheme = _SCHEME.match(value)
    return value if scheme is None else scheme.group(1).lower() + value[scheme.end(1) :]


def _has_host(value: str) -> bool:
    try:
        return bool(urlsplit(value).hostname)
    except ValueError:  # an unbalanced "[" in an IPv6 host, a bad port
        return False


def _shown(scheme: str) -> str:
    return scheme if len(scheme) <= 40 else scheme[:39] + "…"


def canonical_url(value: str) -> str | None:
    """The form two spellings of one page's URL share, or None for a URL not kept.

    Scheme dropped (``http`` and ``https`` name one page), host lower-cased and its default
    port dropped, no fragment, no trailing slash but the root's, tracking parameters
    (``utm_*``, ``fbclid``, ...) removed and the rest kept in order:
    ``HTTPS://Example.com:443/a/?utm_source=x&p=2#top`` -> ``//example.com/a?p=2``. A site
    path keeps no host: ``/a/?p=2`` -> ``/a?p=2``.
    """
    value = value.strip()
    if not value or url_problem(value) is not None:
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    query = urlencode(
        [
            (key, item)
            for key, item in parse_qsl(parts.query, keep_blank_values=True)
            if not key.lower().startswith("utm_") and key.lower() not in TRACKING_PARAMETERS
        ]
    )
    tail = path + (f"?{query}" if query else "")
    if not parts.hostname:
        return tail
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = parts.hostname.lower() + ("" if port in (None, default) else f":{port}")
    return f"//{netloc}{tail}"
