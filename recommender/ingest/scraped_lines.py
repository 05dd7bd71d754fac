"""What one line of a scraped page is: the line model, and the rules that need no metadata.

Holds the kinds a line can be, the splitting of a page into lines (list markers noted,
hard-wrapped paragraphs rejoined), and the rules for chrome (banners, promos, credits,
buttons, share bars), headers of lists of other stories or of comments, and whether what
is left reads as prose or as a headline. Metadata lines (dates, bylines, tags, breadcrumbs)
are in recommender.ingest.scraped_meta; the order the rules run in is in scraped_text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "ARTICLE_HEADER_KINDS",
    "CLOSING",
    "LONG_LINE_WORDS",
    "Kind",
    "Line",
    "list_header",
    "prose_or_headline",
    "sentence_chrome",
    "short_chrome",
    "split_lines",
]


class Kind(Enum):
    """What a line of a scraped page is."""

    BREADCRUMB = "breadcrumb"
    DATE = "date"
    TAGS = "tags"
    TAG_HEADER = "tag header"
    LIST_HEADER = "list header"
    COMMENTS = "comments"
    BYLINE = "byline"
    BIO = "bio"
    CHROME = "chrome"
    PARAGRAPH = "paragraph"
    HEADLINE = "headline"


@dataclass(frozen=True)
class Line:
    """One logical line of the page and what it is."""

    text: str
    kind: Kind
    bulleted: bool = False
    #: The ISO 8601 date a date line states, and whether it is an update time.
    date: str | None = None
    updated: bool = False
    tags: tuple[str, ...] = ()

    @property
    def words(self) -> int:
        return len(self.text.split())

    @property
    def prose(self) -> bool:
        """Prose not set as a list item (lists are other headlines); a bio-like sentence
        may be the story's own ("X is a journalist who was detained ...")."""
        return self.kind in (Kind.PARAGRAPH, Kind.BIO) and not self.bulleted


# A headline rarely runs past this many words; a line this long is prose even unpunctuated.
LONG_LINE_WORDS = 25
# Lines that belong to an article's own header: after them a list above the story is over.
ARTICLE_HEADER_KINDS = {Kind.BREADCRUMB, Kind.BYLINE, Kind.DATE}


# -- splitting ----------------------------------------------------------------------------

# List markers: "- item", "• item", "1. item", "2) item".
_BULLET = re.compile(r"^(?:[-*•·▪►‣◦]|\d{1,2}[.)])\s+")
# Characters scrapers leave in text that are not text: zero-width spaces, BOMs, soft hyphens.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
# A line ending like this closes its sentence or introduces the next line.
_ENDS_CLAUSE = re.compile(r"[.!?:;\u2026\"\u201d\u2019)]$")
# Only a line this long can be the first half of a hard-wrapped paragraph (a short one is a
# headline or a button), and only a word in lower case ("the", not "iPhone") continues it.
_WRAP_MIN_WORDS = 6
_WRAP_MIN_CHARS = 50
_LOWER_WORD = re.compile(r"[a-z\u00df-\u00ff]+\b")


def split_lines(text: str) -> list[tuple[str, bool]]:
    """Non-empty lines, whitespace collapsed, list markers off (and noted), wraps rejoined."""
    out: list[tuple[str, bool]] = []
    joinable = False
    for raw in text.translate(_INVISIBLE).splitlines():
        line = " ".join(raw.split())
        marker = _BULLET.match(line)
        if marker:
            line = line[marker.end() :]
        if not line:
            joinable = False  # a blank line ends a paragraph
            continue
        # Text dumps wrap paragraphs at a fixed width: a line that starts in lower case
        # after one that did not finish its sentence is the same paragraph.
        if joinable and not marker and _LOWER_WORD.match(line):
            previous, previous_bulleted = out[-1]
            out[-1] = (f"{previous} {line}", previous_bulleted)
        else:
            out.append((line, marker is not None))
        last = out[-1][0]
        joinable = (
            len(last.split()) >= _WRAP_MIN_WORDS
            and len(last) >= _WRAP_MIN_CHARS
            and not _ENDS_CLAUSE.search(last)
        )
    return out


# -- chrome that reads like a sentence: banners, promos, credits ----------------------------

_CHROME_PATTERNS = [
    # Cookie consent banners: long sentences, but about the site, never the story.
    re.compile(
        r"\b(?:we|this (?:site|website)|our (?:site|website)) uses? cookies\b"
        r"|\bcookies? (?:policy|settings|preferences|consent|notice)\b"
        r"|\baccept (?:all )?cookies\b|\bby continuing to (?:browse|use)\b"
        r"|^we value your privacy\b|\bwe and our (?:\d+ )?(?:partners|vendors)\b",
        re.I,
    ),
    # Newsletter and subscription calls to action.
    re.compile(
        r"^(?:sign up|subscribe|get|receive|join)\b.*\bnewsletters?\b|\bto your inbox\b"
        r"|\bin your inbox\b|^enter your e-?mail|\balready a (?:subscriber|member)\b"
        r"|^subscribe (?:now|today|for|to continue)\b|^support (?:our|independent) journalism"
        r"|^become a (?:member|subscriber)\b"
        r"|\bis (?:only )?(?:available )?(?:for|to) subscribers\b",
        re.I,
    ),
    # Inline promos of another story: "READ MORE: ...", "Related: ...", "Watch: ...".
    re.compile(
        r"^(?:read more|read also|also read|see also|related(?: story| article| coverage)?"
        r"|recommended|read next|more|watch|listen|click here)\s*[:|\u203a\u00bb>]\s*\S",
        re.I,
    ),
    # Photo credits and captions' credit lines.
    re.compile(
        r"^(?:photo|image|picture|video|caption|credit|illustration|file photo)s?"
        r"(?: credits?| by)?\s*[:|]",
        re.I,
    ),
    # Footers.
    re.compile(r"^(?:©|\(c\)\s|copyright\b)|\ball rights reserved\b", re.I),
    # "Follow us on X", "Contact Jane at jane@example.com": how to reach the site, not news.
    re.compile(
        r"^(?:follow|contact|e-?mail|reach)\b.{0,80}"
        r"(?:@|\btwitter\b|\bx\.com\b|\binstagram\b|\bbluesky\b|\bthreads\b|\bfacebook\b)",
        re.I,
    ),
    # A bare link.
    re.compile(r"^(?:https?://|www\.)\S+$", re.I),
]
# A photo credit inside a caption ("... (AP Photo/Jane Doe)") marks the caption as chrome.
_PHOTO_CREDIT = re.compile(
    r"\b(?:getty images|ap photo|afp via getty|reuters/|shutterstock|istock)\b", re.I
)
_MAX_CAPTION_WORDS = 40
# Closing quotes and brackets that may follow a sentence's last punctuation mark.
CLOSING = r"[\"'\u201d\u2019)\]]*"


def sentence_chrome(text: str) -> Line | None:
    """Banners, promos, credits and footers, however long the line is."""
    if any(pattern.search(text) for pattern in _CHROME_PATTERNS):
        return Line(text, Kind.CHROME)
    if _PHOTO_CREDIT.search(text) and len(text.split()) <= _MAX_CAPTION_WORDS:
        return Line(text, Kind.CHROME)
    return None


# -- headers of what follows the story: other headlines, comments ---------------------------


def _header_key(text: str) -> str:
    """A header line as compared: lower case, no counts, arrows or trailing colon."""
    key = text.casefold().replace("\u2019", "'")
    key = re.sub(r"[(\[]?\b\d[\d.,]*[km]?\b[)\]]?", " ", key)
    key = re.sub(r"[^\w\s'&-]", " ", key)
    return " ".join(key.split())


# Headers of lists of the site's other stories. Everything under them is the page's tail.
_LIST_HEADER = re.compile(
    r"related(?: (?:stories|articles|news|coverage|content|links|posts|reading|videos))?"
    r"|recommended(?: (?:for you|stories|articles|reading|videos))?"
    r"|recommendations?(?: for you)?|rankings?"
    r"|most (?:read|popular|viewed|shared|watched|commented|emailed)"
    r"(?: (?:stories|articles|news|today|this week|now|on \S+(?: \S+)?))?"
    r"|trending(?: (?:now|stories|news|topics|today))?"
    r"|popular(?: (?:now|stories|today|articles|on \S+(?: \S+)?))?"
    r"|top (?:stories|news|headlines|videos)|latest(?: (?:news|stories|headlines|videos))?"
    r"|more (?:stories|news|headlines|articles|videos)(?: (?:from|on|in|about)(?: \S+){1,3})?"
    r"|more (?:from|on|in|like this)(?: \S+){0,4}"
    r"|(?:what to )?read (?:next|this next)|up next|next up|watch next|also read"
    r"|you (?:may|might) (?:also )?(?:like|enjoy|be interested in)"
    r"|don't miss|see also|editor'?s'? picks?|around the web|from our partners"
    r"|in other news|(?:elsewhere|also) on \S+(?: \S+){0,2}"
    r"|(?:sponsored|promoted|partner) (?:content|stories|links)"
    # Not other headlines, but what follows it is no more story than they are.
    r"|about the authors?"
)
# Where reader comments begin ("Comments", "12 Comments", "Leave a reply").
_COMMENTS_HEADER = re.compile(
    r"comments?|reader comments|(?:leave|add|post) a (?:comment|reply)|discussion"
    r"|join the (?:conversation|discussion)|(?:show|view|read) (?:all )?comments"
    r"|comment on this (?:story|article)"
)


def list_header(text: str) -> Line | None:
    """The header of a list of other stories ("Most read") or of the comments, or None."""
    key = _header_key(text)
    if _COMMENTS_HEADER.fullmatch(key):
        return Line(text, Kind.COMMENTS)
    if _LIST_HEADER.fullmatch(key):
        return Line(text, Kind.LIST_HEADER)
    return None


# -- short UI lines ------------------------------------------------------------------------------

# Words that make up buttons and share bars; a short line of nothing else is chrome.
# (A word list reads better as one string than as eighty quoted words.)
_UI_WORDS = frozenset(
    """view views share shares shared print email e-mail mail facebook twitter x linkedin
    whatsapp reddit pinterest telegram flipboard threads bluesky instagram youtube tiktok
    messenger sms copy link save saved bookmark tweet pin like likes follow subscribe menu
    search home close login logout register gift listen watch play pause video videos
    photos gallery audio transcript more less next previous prev back top accept reject
    agree ok okay dismiss expand collapse loading advertisement sponsored newsletter
    newsletters account settings donate feedback corrections comment comments""".split()  # noqa: SIM905
)
_UI_PHRASES = frozenset(
    (
        "sign in",
        "log in",
        "sign up",
        "log out",
        "sign out",
        "read more",
        "continue reading",
        "keep reading",
        "show more",
        "load more",
        "see more",
        "see all",
        "view all",
        "skip to content",
        "skip to main content",
        "skip to navigation",
        "back to top",
        "listen to this article",
        "copy link",
        "link copied",
        "manage preferences",
        "got it",
        "i agree",
        "my account",
        "toggle navigation",
        "open menu",
        "close menu",
        "show caption",
        "hide caption",
        "enlarge this image",
        "next article",
        "previous article",
        "font size",
        "text size",
        "share this",
        "share this article",
        "share this story",
        "email this",
        "support us",
        "report an error",
        "report a typo",
        "ad feedback",
        "close ad",
        "report ad",
        "story continues below",
        "article continues below",
        "scroll to continue",
        "click to expand",
        "opens in new window",
        "gift article",
        "follow us",
        "please wait",
    )
)
_MAX_UI_WORDS = 6
# Share and reaction widgets: a few words ending in a count ("TwitterveryGood! (3918)").
_WIDGET_COUNT = re.compile(r"[(\[]\s*\d[\d.,]*\s*[km]?\s*[)\]]$", re.I)
_MAX_WIDGET_WORDS = 4
_COUNTER = re.compile(r"^\d[\d.,]*[km]?\s+(?:shares?|likes?|views?|reactions?|reads?)$", re.I)
_READING_TIME = re.compile(r"^\d+\s*-?\s*(?:mins?|minutes?)(?:\s+(?:read|listen|watch))?$", re.I)
# "Advertisement", "Story continues below advertisement", "Sponsored".
_ADVERT = re.compile(r"\b(?:advertisement|advertising|sponsored)\b|^ads?$", re.I)


def short_chrome(text: str) -> Line | None:
    """Buttons, share bars, counters, reading times and advert slots."""
    words = len(text.split())
    if not any(char.isalpha() for char in text):
        return Line(text, Kind.CHROME)  # separators, counters, "•••" (dates come earlier)
    if words > _MAX_UI_WORDS:
        return None
    key = _header_key(text)
    tokens = re.findall(r"[\w'-]+", key)
    ui = key in _UI_PHRASES or (bool(tokens) and all(t in _UI_WORDS for t in tokens))
    widget = words <= _MAX_WIDGET_WORDS and _WIDGET_COUNT.search(text) is not None
    if ui or widget or _COUNTER.match(text) or _READING_TIME.match(text) or _ADVERT.search(text):
        return Line(text, Kind.CHROME)
    return None


# -- prose or headline -----------------------------------------------------------------------------

# A full stop (not an ellipsis) at the end, maybe inside closing quotes or brackets.
_PERIOD_END = re.compile(r"(?<!\.)\." + CLOSING + "$")
# "?", "!" or an ellipsis: headlines end like this too ("Could X pave the way?").
_OTHER_END = re.compile(r"(?:[!?\u2026]|\.\.\.)" + CLOSING + "$")
# A sentence boundary inside the line: a headline is one sentence, prose often more.
_INNER_SENTENCE = re.compile(
    r"[a-z0-9)\"\u201d\u2019][.!?]" + CLOSING + r"\s+[\"\u201c\u2018]?[A-Z]"
)
_MIN_SENTENCE_WORDS = 3
_MIN_COLON_PROSE_WORDS = 6


def prose_or_headline(text: str) -> Line:
    """A paragraph if the line reads as prose, else a headline: what no other rule claimed."""
    words = len(text.split())
    if _PERIOD_END.search(text):
        prose = words >= _MIN_SENTENCE_WORDS
    elif _OTHER_END.search(text):
        prose = words >= LONG_LINE_WORDS or _INNER_SENTENCE.search(text) is not None
    elif text.endswith(":"):
        prose = words >= _MIN_COLON_PROSE_WORDS  # 'Mayorkas said:' before a quote
    else:
        prose = words >= LONG_LINE_WORDS
    return Line(text, Kind.PARAGRAPH if prose else Kind.HEADLINE)
