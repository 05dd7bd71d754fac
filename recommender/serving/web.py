"""The web pages of the service: browse the index, a story with its Related list, paste a story.

    add_web_ui(app, rec, ...)   mounts the pages and their static assets on the service's app

    GET  /                      search and browse the indexed articles by title, newest first
    GET  /articles/{id}         the story, then its Related list, with controls (k, section,
                                date window, diversity) in a plain GET form
    GET  /similar               the "paste a story" form
    POST /similar               the same form with what the archive holds on the pasted story
    GET  /static/...            style.css and app.js, shipped inside the package

Everything is rendered on the server and works without JavaScript; app.js only
swaps the Related list in place when a control changes. Templates are Jinja2
with autoescaping on, so titles and bodies from the index can never inject
markup, and an article's ``url`` becomes a link only when it is http(s) or a site
path (:func:`recommender.urls.safe_url`; an index built before URLs were checked
on the way in may hold ``javascript:`` ones). Nothing is inline: no script, no
style, no ``on*=`` handler, so the pages run under the service's strict CSP.
Like the JSON routes, these hold no ranking or storage logic: they parse the
controls, make one Recommender call and shape the answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from recommender.errors import InputError, InvalidArgumentError, RecommenderError
from recommender.ingest.records import parse_datetime
from recommender.types import ArticleSummary, Match
from recommender.urls import safe_url

if TYPE_CHECKING:
    import jinja2

    from recommender.recommender import Recommender

__all__ = ["PAGE_SIZE", "WINDOWS", "Controls", "add_web_ui"]

#: Articles per page of the browse list.
PAGE_SIZE = 20
#: The date windows offered: days either side of the story's date -> label.
WINDOWS: dict[int, str] = {
    0: "Any time",
    1: "Within a day",
    3: "Within 3 days",
    7: "Within a week",
    30: "Within a month",
    365: "Within a year",
}
#: How a pasted story is read: "auto" looks for markup and picks html or plain.
PASTE_FORMATS: dict[str, str] = {
    "auto": "Detect",
    "plain": "Plain story text",
    "html": "A saved web page (HTML)",
    "text": "Text copied from a news page",
}
_MAX_DIVERSITY = 0.9
_MAX_PAGE = 1_000_000
_MARKUP = re.compile(r"<\s*(html|body|head|article|div|p|meta|!doctype)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Controls:
    """The options of a Related list as the form gives them; invalid values fall back."""

    k: int = 10
    section: str = ""
    window: int = 0
    diversity: float = 0.0

    @classmethod
    def parse(cls, params: Mapping[str, str], *, max_k: int) -> tuple[Controls, list[str]]:
        """The controls in ``params``, and a message for each value that was not valid."""
        errors: list[str] = []
        controls = cls(section=params.get("section", "").strip())
        raw_k = params.get("k", "").strip()
        if raw_k:
            if raw_k.isdigit() and 1 <= int(raw_k) <= max_k:
                controls = replace(controls, k=int(raw_k))
            else:
                errors.append(f"How many must be a whole number from 1 to {max_k}, not {raw_k!r}.")
        raw_window = params.get("window", "").strip()
        if raw_window:
            if raw_window.isdigit() and int(raw_window) in WINDOWS:
                controls = replace(controls, window=int(raw_window))
            else:
                errors.append(f"Unknown date window {raw_window!r}.")
        raw_diversity = params.get("diversity", "").strip()
        if raw_diversity:
            try:
                diversity = float(raw_diversity)
            except ValueError:
                diversity = math.nan
            if 0.0 <= diversity <= _MAX_DIVERSITY:
                controls = replace(controls, diversity=diversity)
            else:
                errors.append(
                    f"Diversity must be a number from 0 to {_MAX_DIVERSITY}, not {raw_diversity!r}."
                )
        return controls, errors


@dataclass(frozen=True)
class RelatedItem:
    """One row of a rendered Related list."""

    id: str
    href: str
    title: str
    published_at: str | None
    date: str | None
    section: str | None
    score: str
    reason: str | None
    #: (a sentence of the query story, a sentence of this item) that share the most telling words.
    passages: tuple[str, str] | None
    #: The original's address as a link: None unless http(s) or a site path.
    url: str | None


# -- mounting ------------------------------------------------------------------------------


def add_web_ui(
    app: FastAPI,
    rec: Recommender,
    *,
    status_of: Callable[[RecommenderError], int],
    max_k: int,
    docs: bool = True,
) -> None:
    """Add the pages and ``/static`` to ``app``; library errors become pages (``status_of``).

    ``docs=False``: the API docs need the token, so the pages do not link to them.
    """
    env = _environment()
    app.mount("/static", StaticFiles(packages=[("recommender.serving", "static")]), name="static")

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        base = str(request.scope.get("root_path", "")).rstrip("/")
        html = env.get_template(name).render(base=base, count=len(rec), docs=docs, **context)
        return HTMLResponse(html, status_code=status)

    def failure(request: Request, exc: RecommenderError) -> HTMLResponse:
        status = status_of(exc)
        return page(
            request,
            "error.html",
            status,
            title="Not found" if status == 404 else "Error",
            message=str(exc),
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> HTMLResponse:
        query = request.query_params.get("q", "").strip()
        number = _page_number(request.query_params.get("page", ""))
        listing = rec.browse(query=query, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        pages = max(1, math.ceil(listing.total / PAGE_SIZE))
        return page(
            request,
            "index.html",
            title="Articles",
            query=query,
            listing=listing,
            articles=[_summary_view(a) for a in listing.articles],
            number=number,
            pages=pages,
            page_href=lambda n: "?" + urlencode({"q": query, "page": n} if query else {"page": n}),
        )

    @app.get("/articles/{article_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def article(request: Request, article_id: str) -> HTMLResponse:
        controls, errors = Controls.parse(request.query_params, max_k=max_k)
        try:
            story = rec.get(article_id)
            thread = rec.story(article_id)
            matches, notes = _related(rec, article_id, controls, story.published_at)
        except RecommenderError as exc:
            return failure(request, exc)
        return page(
            request,
            "article.html",
            title=story.title or story.id,
            story=story,
            date=_date_text(story.published_at.isoformat() if story.published_at else None),
            paragraphs=[p for p in story.body.splitlines() if p.strip()],
            controls=controls,
            errors=errors,
            notes=notes,
            sections=rec.sections(),
            windows=WINDOWS,
            related=[_related_view(m) for m in matches],
            thread=[_thread_view(a, current=a.id == article_id) for a in thread.articles],
            action=_article_href(article_id),
            max_k=max_k,
        )

    @app.get("/similar", response_class=HTMLResponse, include_in_schema=False)
    def similar_form(request: Request) -> HTMLResponse:
        controls, _ = Controls.parse({}, max_k=max_k)
        return _similar_page(
            request, controls=controls, fields={}, errors=[], notes=[], result=None
        )

    @app.post("/similar", response_class=HTMLResponse, include_in_schema=False)
    async def similar(request: Request) -> HTMLResponse:
        fields, problem = await _form_fields(request)
        # Invalid options fall back to their defaults (and are named), as on article pages.
        controls, errors = Controls.parse(fields, max_k=max_k)
        result: dict[str, Any] | None = None
        notes: list[str] = []
        status = 200
        if problem:
            errors.append(problem)
            status = 415
        else:
            try:
                result, notes = await run_in_threadpool(_similar, rec, fields, controls)
            except RecommenderError as exc:
                errors.append(str(exc))
                status = status_of(exc)
        return _similar_page(
            request,
            controls=controls,
            fields=fields,
            errors=errors,
            notes=notes,
            result=result,
            status=status,
        )

    def _similar_page(
        request: Request,
        *,
        controls: Controls,
        fields: Mapping[str, str],
        errors: list[str],
        notes: list[str],
        result: dict[str, Any] | None,
        status: int = 200,
    ) -> HTMLResponse:
        return page(
            request,
            "similar.html",
            status,
            title="Paste a story",
            controls=controls,
            fields=fields,
            errors=errors,
            notes=notes,
            result=result,
            sections=rec.sections(),
            windows=WINDOWS,
            formats=PASTE_FORMATS,
            max_k=max_k,
        )


def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("recommender.serving", "templates"),
        # Every value from the index (titles, bodies, sections, URLs) is escaped.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["article_href"] = _article_href
    # Links only to http(s) and site paths, ingest's rule: an index built before ingest
    # checked URLs may still hold "javascript:" ones.
    env.filters["safe_href"] = safe_url
    return env


# -- queries -------------------------------------------------------------------------------


def _related(
    rec: Recommender, article_id: str, controls: Controls, published: datetime | None
) -> tuple[list[Match], list[str]]:
    options, notes = _options(rec, controls, published)
    # The story's own articles are listed apart ("More on this story"): Related is background.
    return rec.related(article_id, exclude_story=True, **options), notes


def _similar(
    rec: Recommender, fields: Mapping[str, str], controls: Controls
) -> tuple[dict[str, Any], list[str]]:
    story = _pasted_story(fields)
    published = parse_datetime(story["published_at"]) if story["published_at"] else None
    options, notes = _options(rec, controls, published)
    matches = rec.similar(
        title=story["title"] or None,
        body=story["body"],
        published_at=published,
        **options,
    )
    result = {
        "title": story["title"],
        "date": _date_text(published.isoformat() if published else None),
        "words": len(story["body"].split()),
        "format": PASTE_FORMATS[story["format"]],
        "related": [_related_view(m) for m in matches],
    }
    return result, notes


def _options(
    rec: Recommender, controls: Controls, published: datetime | None
) -> tuple[dict[str, Any], list[str]]:
    """Keyword arguments of related()/similar() for ``controls``, and notes for the reader."""
    options: dict[str, Any] = {"k": controls.k, "section": controls.section or None}
    notes: list[str] = []
    if controls.window and published is None:
        notes.append("This story has no date, so the date window is not applied.")
    elif controls.window and published is not None:
        span = timedelta(days=controls.window)
        options["since"], options["until"] = published - span, published + span
    if controls.diversity:
        options["ranking"] = rec.ranking.with_options(diversity=controls.diversity)
    # Each item's reason: why the engine put it there (shared names, terms, sentences).
    options["explain"] = True
    return options, notes


def _pasted_story(fields: Mapping[str, str]) -> dict[str, Any]:
    """Title, body, date and format of the pasted story, through the page extraction."""
    from recommender.ingest.pages import extract_html, extract_text

    text = fields.get("story", "")
    kind = fields.get("format", "auto")
    if kind not in PASTE_FORMATS:
        raise InvalidArgumentError(
            f"unknown format {kind!r}; expected one of {sorted(PASTE_FORMATS)}"
        )
    if not text.strip():
        raise InvalidArgumentError("paste a story first: the story field is empty")
    if kind == "auto":
        kind = "html" if _MARKUP.search(text) else "plain"
    title = fields.get("title", "").strip()
    published = fields.get("published_at", "").strip() or None
    if kind == "plain":
        return {"title": title, "body": text.strip(), "published_at": published, "format": kind}
    page = extract_html(text) if kind == "html" else extract_text(text)
    problem = page.problem()
    if problem is not None:
        raise InputError(f"the pasted {PASTE_FORMATS[kind].lower()}: {problem}")
    return {
        "title": title or page.title,
        "body": page.body,
        "published_at": published or page.published_at,
        "format": kind,
    }


async def _form_fields(request: Request) -> tuple[dict[str, str], str | None]:
    """The fields of an urlencoded form (the only kind the page sends), or a problem."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return (
            {},
            "expected a form (application/x-www-form-urlencoded), "
            f"got {kind or 'no content type'!r}",
        )
    data = await request.body()
    try:
        parsed = parse_qs(data.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return {}, "the form is not UTF-8"
    return {name: values[0] for name, values in parsed.items()}, None


# -- view models -------------------------------------------------------------------------


def _article_href(article_id: str) -> str:
    # Ids may be URLs (saved pages): every reserved character is quoted.
    return "/articles/" + quote(article_id, safe="")


def _page_number(raw: str) -> int:
    # Capped so the offset stays a small SQLite integer whatever the address says.
    return min(int(raw), _MAX_PAGE) if raw.isdigit() and int(raw) >= 1 else 1


def _date_text(published_at: str | None) -> str | None:
    if not published_at:
        return None
    try:
        when = datetime.fromisoformat(published_at)
    except ValueError:
        return published_at
    return f"{when.day} {when:%b %Y}"


def _summary_view(summary: Any) -> dict[str, Any]:
    return {
        "id": summary.id,
        "href": _article_href(summary.id),
        "title": summary.title or summary.id,
        "published_at": summary.published_at,
        "date": _date_text(summary.published_at),
        "section": summary.section,
    }


@dataclass(frozen=True)
class ThreadItem:
    """One article of the story's thread, as the article page lists it."""

    id: str
    href: str
    title: str
    published_at: str | None
    date: str | None
    section: str | None
    current: bool


def _thread_view(article: ArticleSummary, *, current: bool) -> ThreadItem:
    return ThreadItem(**_summary_view(article), current=current)


def _related_view(match: Match) -> RelatedItem:
    explanation = match.explanation
    return RelatedItem(
        **_summary_view(match),
        score=f"{match.score:.2f}",
        reason=explanation.summary() if explanation is not None else None,
        passages=explanation.passages if explanation is not None else None,
        url=safe_url(match.url),
    )
