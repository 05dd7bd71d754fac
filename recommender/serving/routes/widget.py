"""What a site embeds: ``GET /widget.js`` and ``GET /v1/related.html`` (an HTML fragment).

The script (``static/widget.js``) renders a page's related list from ``/v1/related`` in the
reader's browser; the fragment is the same markup rendered here, for sites that include it
server-side (SSI, ESI) and want no script. Both are read-only and public, like the lists.
"""

from functools import cache
from html import escape
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from recommender.serving.state import Rec
from recommender.types import Match
from recommender.urls import safe_url

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
#: The script changes only with the package: browsers and CDNs may keep it an hour.
_SCRIPT_CACHE = "public, max-age=3600"


@router.get("/widget.js")
def widget() -> Response:
    """The embeddable Related widget (no framework, no build step)."""
    return Response(
        _script(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": _SCRIPT_CACHE},
    )


@router.get("/v1/related.html", response_class=HTMLResponse)
def related_fragment(
    rec: Rec,
    url: Annotated[str, Query(description="The page's URL.")],
    k: Annotated[int, Query(ge=1, le=20)] = 5,
    title: Annotated[str, Query(max_length=200)] = "Related",
) -> HTMLResponse:
    """The related list of the article at ``url`` as the widget's markup (no script)."""
    matches = rec.related(rec.article_at(url), k=k)
    return HTMLResponse(fragment(matches, title))


@cache
def _script() -> bytes:
    """The script's bytes, read from the package once per process (it changes with it)."""
    return resources.files("recommender.serving").joinpath("static/widget.js").read_bytes()


def fragment(matches: list[Match], title: str) -> str:
    """The widget's markup for ``matches``: every value escaped, links only if safe."""
    items = []
    for match in matches:
        href = safe_url(match.url)
        if href is None:
            continue
        date = match.published_at or ""
        when = (
            f' <time class="recommender-related__date" datetime="{escape(date)}">'
            f"{escape(date[:10])}</time>"
            if date
            else ""
        )
        items.append(
            f'<li class="recommender-related__item"><a class="recommender-related__link" '
            f'href="{escape(href)}">{escape(match.title or href)}</a>{when}</li>'
        )
    if not items:
        return ""
    return (
        f'<section class="recommender-related" aria-label="{escape(title)}">'
        f'<h2 class="recommender-related__title">{escape(title)}</h2>'
        f'<ol class="recommender-related__list">{"".join(items)}</ol></section>'
    )
