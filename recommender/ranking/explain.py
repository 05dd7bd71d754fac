"""Why two stories are related: shared names, salient terms and the closest sentences.

Computed only when a caller asks (``explain=True``), for the k matches of one
query, so a few milliseconds of pure-Python text work per match is fine; a
query that does not ask never comes here.

No NLP model is used (measured need: none; see the README's "Explanations").
Names are capitalised phrases, cleaned by rules: a sentence's first word counts
only if the text also capitalises it mid-sentence, leading titles ("President",
"Mr") are stripped and kept as a cue, months and weekdays are not names.
Each name is then classed by cues in its own text:

- organisation: a suffix such as "Inc", "Ministry", "Council", "Party", a head
  such as "Ministry of", "University of", or an acronym ("FBI");
- place: a suffix such as "City", "Province", "Street", "Hospital", a head such
  as "Mount", "Lake", or a preposition before it ("in Kalvar", "near Serevan",
  "the town of Kalvar");
- person: a title before it ("Judge Marsha Revel"), "said" after it, or two to
  three capitalised words with no other cue; a lone surname joins the full name
  it abbreviates in the same text.

The limits are those of any gazetteer-free guess: a name with no cue at all
(one capitalised word that no preposition or title precedes) is left out of
the name lists, a person at the start of a headline-cased title is not seen,
and the classes can be wrong ("in Washington" reads as a place even when it
means the government). Shared terms still name what the lists miss.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from recommender.types import Explanation

__all__ = ["Side", "Story", "explain", "named_entities", "prepare", "sentences"]

#: How many of each kind of evidence an explanation keeps.
MAX_TERMS = 8
MAX_NAMES = 5
#: Sentences compared per story for the passage pair (pairs grow as the square).
MAX_SENTENCES = 60

PEOPLE, PLACES, ORGANISATIONS = "person", "place", "organisation"

#: The typographic apostrophe, written out so that it cannot be mistaken for a backtick.
_RSQUO = "\u2019"
_WORD = re.compile(r"[^\W\d_][\w'\u2019-]*(?:\.[^\W\d_]\.?)*|&")
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+|\n+")
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "gov", "sen", "rep", "gen", "col", "lt", "sgt", "capt",
    "st", "jr", "sr", "inc", "corp", "co", "ltd", "no", "vs", "etc", "u.s", "u.k", "jan",
    "feb", "mar", "apr", "aug", "sept", "sep", "oct", "nov", "dec", "mt", "ft",
}  # fmt: skip
_STOP = {
    "a", "an", "the", "and", "or", "but", "if", "then", "so", "as", "at", "by", "for", "from",
    "in", "into", "of", "on", "onto", "to", "with", "without", "after", "before", "during",
    "while", "when", "where", "why", "how", "what", "which", "who", "whom", "whose", "this",
    "that", "these", "those", "there", "here", "he", "she", "it", "they", "we", "you", "i",
    "his", "her", "its", "their", "our", "your", "my", "me", "him", "them", "us", "is", "are",
    "was", "were", "be", "been", "has", "have", "had", "do", "does", "did", "will", "would",
    "can", "could", "should", "may", "might", "must", "not", "no", "yes", "all", "some", "any",
    "each", "every", "both", "more", "most", "many", "much", "other", "such", "only", "also",
    "just", "about", "over", "under", "up", "down", "out", "off", "again", "once", "new",
    "according", "because", "although", "though", "however", "meanwhile", "since", "until",
    "last", "next", "first", "one", "two", "three", "early", "late", "later", "today",
    "yesterday", "tomorrow", "tonight", "earlier", "now", "still", "even", "among", "between",
    "updated", "read", "watch", "photo", "video", "advertisement", "breaking", "exclusive",
    "police", "officials", "authorities", "reuters", "ap", "afp",
}  # fmt: skip
_TIME_WORDS = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "christmas", "easter",
}  # fmt: skip
_CONNECTORS = {"of", "de", "del", "da", "di", "du", "la", "le", "van", "von", "der", "den", "al"}
_PERSON_TITLES = {
    "mr", "mrs", "ms", "miss", "dr", "prof", "professor", "sir", "dame", "lord", "lady",
    "president", "vice", "senator", "sen", "rep", "representative", "congressman",
    "congresswoman", "gov", "governor", "mayor", "judge", "justice", "minister", "premier",
    "chancellor", "king", "queen", "prince", "princess", "pope", "bishop", "rev", "father",
    "general", "gen", "colonel", "col", "captain", "capt", "sergeant", "sgt", "officer",
    "detective", "chief", "coach", "manager", "actor", "actress", "singer", "star", "director",
    "spokesman", "spokeswoman", "spokesperson", "secretary", "ceo", "chairman", "chairwoman",
    "lawyer", "attorney", "prosecutor", "sheriff", "deputy", "commissioner", "head", "saint",
    "defender", "striker", "midfielder", "goalkeeper", "forward", "conservator", "dj",
}  # fmt: skip
_SPEECH = {"said", "says", "told", "added", "explained", "wrote", "argued", "insisted", "who"}
_ORG_SUFFIXES = {
    "inc", "corp", "corporation", "co", "company", "ltd", "llc", "plc", "group", "holdings",
    "ministry", "department", "agency", "council", "committee", "party", "union", "university",
    "college", "school", "academy", "institute", "association", "federation", "commission",
    "court", "bank", "board", "bureau", "foundation", "fund", "organisation", "organization",
    "network", "service", "services", "authority", "office", "league", "club", "fc", "united",
    "times", "post", "news", "press", "church", "army", "navy", "force", "forces", "police",
    "parliament", "senate", "congress", "assembly", "administration", "studios", "records",
    "motors", "airlines", "airways", "systems", "technologies", "labs", "partners", "trust",
    "society", "museum", "team", "centers", "centres",
}  # fmt: skip
_ORG_HEADS = {
    "ministry", "department", "university", "bank", "office", "bureau", "board", "council",
    "commission", "institute", "church", "house", "court", "federation", "association",
    "academy", "museum", "college", "committee", "union", "league",
}  # fmt: skip
_PLACE_SUFFIXES = {
    "city", "county", "province", "state", "region", "district", "street", "st", "road",
    "avenue", "ave", "boulevard", "square", "river", "lake", "mountain", "mountains", "island",
    "islands", "valley", "bay", "beach", "coast", "airport", "hospital", "center", "centre",
    "clinic", "stadium", "arena", "park", "bridge", "prison", "jail", "hotel", "station",
    "village", "town", "harbour", "harbor", "port", "peninsula", "sea", "ocean", "gulf",
    "desert", "forest", "heights", "hills", "falls", "canyon", "highway", "republic",
}  # fmt: skip
_PLACE_HEADS = {"mount", "mt", "lake", "port", "fort", "cape", "gulf", "isle", "new", "san"}
_PLACE_PREPS_STRONG = {"in", "near", "across", "outside", "throughout", "into", "inside"}
_PLACE_PREPS_WEAK = {"at", "from", "to", "towards", "toward", "around", "via", "off"}
_PLACE_NOUNS = {
    "town", "city", "village", "province", "state", "region", "island", "republic", "capital",
    "county", "district", "port", "area", "country", "suburb", "neighbourhood", "neighborhood",
}  # fmt: skip
_QUOTES = {'"', "'", "\u201c", "\u201d", "\u2018", "\u2019"}
_PLACE_ACRONYMS = {"us", "u.s", "u.s.", "uk", "u.k", "u.k.", "uae", "usa", "nyc", "la"}


@dataclass(frozen=True)
class Story:
    """The text of one side of a pair."""

    title: str
    body: str

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.body}" if self.title else self.body


# -- sentences ---------------------------------------------------------------------------


def sentences(text: str) -> list[str]:
    """Split into sentences, keeping abbreviations ("Mr.", "U.S.") and initials whole."""
    out: list[str] = []
    start = 0
    for boundary in _BOUNDARY.finditer(text):
        before = text[start : boundary.start()].rstrip("\"'\u201d\u2019)]")
        last = before.rsplit(None, 1)[-1] if before.split() else ""
        word = last.rstrip(".").lower()
        if "\n" not in boundary.group() and (word in _ABBREVIATIONS or len(word) == 1):
            continue
        piece = text[start : boundary.start()].strip()
        if piece:
            out.append(piece)
        start = boundary.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


# -- names -------------------------------------------------------------------------------


@dataclass
class _Name:
    surface: Counter[str] = field(default_factory=Counter)
    votes: Counter[str] = field(default_factory=Counter)

    @property
    def display(self) -> str:
        return max(self.surface.items(), key=lambda kv: (kv[1], len(kv[0])))[0]

    @property
    def kind(self) -> str | None:
        if not self.votes:
            return None
        kind, score = self.votes.most_common(1)[0]
        return kind if score > 0 else None

    def merge(self, other: _Name) -> None:
        self.surface.update(other.surface)
        self.votes.update(other.votes)


def named_entities(story: Story | str) -> dict[str, _Name]:
    """Names in a story (case-folded key -> surface forms and class votes)."""
    story = story if isinstance(story, Story) else Story("", story)
    parts = sentences(story.body)
    headline = bool(story.title) and _headline_cased(story.title)
    if story.title and not headline:
        parts.insert(0, story.title)
    words = [list(_WORD.finditer(sentence)) for sentence in parts]
    known = _name_like(words)
    names: dict[str, _Name] = {}
    found = [
        p for sentence, ws in zip(parts, words, strict=True) for p in _phrases(sentence, ws, known)
    ]
    if headline:
        # Every word of a headline-cased title is capitalised: keep only the
        # phrases the body confirms ("Tara Reid" where the body says "Reid").
        title_words = list(_WORD.finditer(story.title))
        found += [
            (phrase, votes)
            for phrase, votes in _phrases(story.title, title_words, known)
            if any(w.lower() in known for w in phrase.split())
        ]
    for phrase, votes in found:
        entry = names.setdefault(phrase.lower(), _Name())
        entry.surface[phrase] += 1
        entry.votes.update(votes)
    return _merge_surnames(names)


def _name_like(words: Sequence[Sequence[re.Match[str]]]) -> set[str]:
    """Words that read as names: capitalised mid-sentence, or always capitalised and seen twice."""
    mid = {m.group().lower() for ws in words for m in ws[1:] if _capitalised(m.group())}
    capitalised: Counter[str] = Counter()
    lower: set[str] = set()
    for ws in words:
        for m in ws:
            word = m.group()
            if word[:1].isupper():
                capitalised[word.lower()] += 1
            else:
                lower.add(word)
    always = {w for w, n in capitalised.items() if n >= 2 and w not in lower}
    return (mid | always) - _STOP - _TIME_WORDS


def _headline_cased(title: str) -> bool:
    words = [w for w in _WORD.findall(title) if len(w) > 3]
    return bool(words) and sum(w[0].isupper() for w in words) / len(words) > 0.6


def _capitalised(word: str) -> bool:
    return word[:1].isupper() and word.lower() not in _TIME_WORDS


def _phrases(
    sentence: str, words: Sequence[re.Match[str]], known: set[str]
) -> Iterable[tuple[str, Counter[str]]]:
    """Maximal runs of capitalised words (with inner connectors), cleaned and voted on."""
    run: list[re.Match[str]] = []
    start = 0
    for n, match in enumerate(words):
        word = match.group()
        if run and not _adjacent(sentence, run[-1], match):
            yield from _cleaned(sentence, words, run, start, known)
            run = []
        if _capitalised(word) or (run and word.lower() in _CONNECTORS | {"&"}):
            if not run:
                start = n
            run.append(match)
            if word.endswith(("'s", f"{_RSQUO}s")):  # a possessive ends a name: "Ardesh's Serevan"
                yield from _cleaned(sentence, words, run, start, known)
                run = []
        elif run:
            yield from _cleaned(sentence, words, run, start, known)
            run = []
    if run:
        yield from _cleaned(sentence, words, run, start, known)


def _adjacent(sentence: str, left: re.Match[str], right: re.Match[str]) -> bool:
    return sentence[left.end() : right.start()] in (" ", "")


def _cleaned(
    sentence: str,
    words: Sequence[re.Match[str]],
    run: list[re.Match[str]],
    start: int,
    known: set[str],
) -> Iterable[tuple[str, Counter[str]]]:
    opening = sentence[run[0].start() - 1 : run[0].start()]
    closing = sentence[run[-1].end() : run[-1].end() + 1]
    if opening and closing and opening in _QUOTES and closing in _QUOTES:
        return  # a quoted title of a work ("American Pie"), not a name
    tokens = [m.group() for m in run]
    votes: Counter[str] = Counter()
    # Connectors cannot end a name; titles and stop words cannot start one.
    while tokens and tokens[-1].lower() in _CONNECTORS | {"&"}:
        tokens.pop()
    first = start
    while tokens and (_folded(tokens[0]) in _STOP or _folded(tokens[0]) in _PERSON_TITLES):
        if _folded(tokens[0]) in _PERSON_TITLES:
            votes["person"] += 2
        tokens.pop(0)
        first += 1
    tokens = [t.removesuffix("'s").removesuffix(f"{_RSQUO}s") for t in tokens]
    tokens = [t for t in tokens if t]
    if not tokens or (len(tokens) == 1 and _folded(tokens[0]) in _STOP | _PERSON_TITLES):
        return
    if first == 0 and len(tokens) == 1 and tokens[0].lower() not in known:
        return  # a sentence-initial capital says nothing
    prev = [m.group().lower().rstrip(".") for m in words[max(0, first - 3) : first]]
    after = words[start + len(run)].group().lower() if start + len(run) < len(words) else ""
    votes.update(_votes(tokens, prev, after))
    yield " ".join(tokens), votes


def _folded(word: str) -> str:
    return word.lower().rstrip(".")


def _votes(tokens: list[str], prev: list[str], after: str) -> Counter[str]:
    votes: Counter[str] = Counter()
    head, tail = _folded(tokens[0]), _folded(tokens[-1])
    if len(tokens) == 1 and tokens[0].replace(".", "").isupper() and len(tokens[0]) > 1:
        votes[PLACES if head in _PLACE_ACRONYMS else ORGANISATIONS] += 3
        return votes
    if tail in _ORG_SUFFIXES or (head in _ORG_HEADS and len(tokens) > 1):
        votes[ORGANISATIONS] += 3
    if tail in _PLACE_SUFFIXES or (head in _PLACE_HEADS and len(tokens) > 1):
        votes[PLACES] += 3
    if prev and prev[-1] in _PERSON_TITLES:
        votes[PEOPLE] += 2
    if prev and prev[-1] in _PLACE_PREPS_STRONG:
        votes[PLACES] += 2
    elif prev and prev[-1] in _PLACE_PREPS_WEAK:
        votes[PLACES] += 1
    if len(prev) >= 2 and prev[-1] == "of" and prev[-2] in _PLACE_NOUNS:
        votes[PLACES] += 3
    if not votes:
        if after in _SPEECH:
            votes[PEOPLE] += 1
        if 2 <= len(tokens) <= 3 and not any(t.lower() in _CONNECTORS for t in tokens):
            votes[PEOPLE] += 1
    return votes


def _merge_surnames(names: dict[str, _Name]) -> dict[str, _Name]:
    """A lone word that abbreviates one longer name joins it: a person's surname or first
    name ("Reid" for "Tara Reid"), a place's or organisation's first word ("Promises" for
    "Promises Treatment Center")."""
    longer = [k for k, v in names.items() if " " in k and v.kind is not None]
    for key in [k for k in names if " " not in k]:
        owners = [
            k
            for k in longer
            if key == k.split()[0] or (names[k].kind == PEOPLE and key == k.split()[-1])
        ]
        if len(owners) == 1 and names[key].kind in (None, names[owners[0]].kind):
            owner = names[owners[0]]
            owner.votes.update(names[key].votes)
            owner.surface[owner.display] += sum(names[key].surface.values())
            del names[key]
    return names


# -- the explanation ---------------------------------------------------------------------


Analyzer = Callable[[str], list[str]]
IdfLookup = Callable[[Sequence[str]], Iterable[float]]


@dataclass
class Side:
    """One story, analysed once for every pair it is in."""

    story: Story
    terms: Counter[str]
    names: dict[str, _Name]
    sentences: list[tuple[str, set[str]]]


def prepare(story: Story, analyze: Analyzer) -> Side:
    """What one story contributes to every pair it is in: terms, names, sentences."""
    return Side(
        story,
        Counter(analyze(story.text)),
        named_entities(story),
        _sentence_terms(story, analyze),
    )


def explain(query: Side, match: Side, *, idf: IdfLookup, analyze: Analyzer) -> Explanation:
    """The evidence that ``match`` belongs in ``query``'s related list."""
    names = _shared_names(query.names, match.names)
    by_kind: dict[str, list[str]] = {PEOPLE: [], PLACES: [], ORGANISATIONS: []}
    for display, kind in names:
        if len(by_kind[kind]) < MAX_NAMES:
            by_kind[kind].append(display)
    named_words = {w for display, _ in names for w in analyze(display) if " " not in w}
    return Explanation(
        terms=tuple(_shared_terms(query.terms, match.terms, idf=idf, skip=named_words)),
        people=tuple(by_kind[PEOPLE]),
        places=tuple(by_kind[PLACES]),
        organisations=tuple(by_kind[ORGANISATIONS]),
        passages=_best_passages(query.sentences, match.sentences, idf=idf),
    )


def _shared_names(ours: dict[str, _Name], theirs: dict[str, _Name]) -> list[tuple[str, str]]:
    """(display name, kind) of the names both stories mention, most mentioned first."""
    found: list[tuple[int, str, str]] = []
    taken: set[str] = set()
    for key, name in ours.items():
        other = theirs.get(key) or _same_person(key, name, theirs)
        if other is None or key in taken:
            continue
        merged = _Name(Counter(name.surface), Counter(name.votes))
        merged.merge(other)
        kind = merged.kind
        if kind is None:
            continue
        taken.add(key)
        display = max((name.display, other.display), key=len)
        found.append((sum(merged.surface.values()), display, kind))
    found.sort(key=lambda item: -item[0])
    return [(display, kind) for _, display, kind in found]


def _same_person(key: str, name: _Name, names: dict[str, _Name]) -> _Name | None:
    """The other story's name for the same person, by surname ("Reid" and "Tara Reid")."""
    candidates = [
        v
        for k, v in names.items()
        if k != key
        and (
            (v.kind == PEOPLE and k.split()[-1] == key and name.kind in (None, PEOPLE))
            or (name.kind == PEOPLE and key.split()[-1] == k and v.kind in (None, PEOPLE))
        )
    ]
    return candidates[0] if len(candidates) == 1 else None


def _shared_terms(
    ours: Counter[str], theirs: Counter[str], *, idf: IdfLookup, skip: set[str]
) -> list[str]:
    """Shared terms by their part of the lexical cosine: (1 + ln tf) each side, x idf^2."""
    # Names are listed on their own; a bigram that straddles one ("reid launched") is noise.
    shared = [t for t in ours if t in theirs and _telling(t) and not set(t.split()) & skip]
    if not shared:
        return []
    weights = idf(shared)
    scored = sorted(
        zip(shared, weights, strict=True),
        key=lambda tw: -(1 + math.log(ours[tw[0]])) * (1 + math.log(theirs[tw[0]])) * tw[1] ** 2,
    )
    chosen: list[str] = []
    for term, weight in scored:
        if weight <= 0:
            continue
        words = set(term.split())
        if any(words <= set(c.split()) for c in chosen):
            continue  # a unigram already inside a chosen bigram
        # A bigram replaces the unigrams it contains.
        chosen = [c for c in chosen if not set(c.split()) <= words]
        chosen.append(term)
        if len(chosen) == MAX_TERMS:
            break
    return chosen


def _telling(term: str) -> bool:
    return len(term) > 2 or any(ch.isdigit() for ch in term)


def _best_passages(
    ours: list[tuple[str, set[str]]], theirs: list[tuple[str, set[str]]], *, idf: IdfLookup
) -> tuple[str, str] | None:
    """The sentence pair with the largest idf-weighted overlap of words (a cosine)."""
    vocabulary = sorted({t for _, ts in ours + theirs for t in ts})
    if not vocabulary:
        return None
    weight = dict(zip(vocabulary, idf(vocabulary), strict=True))
    best, pair = 0.0, None
    for sentence, terms in ours:
        norm = math.sqrt(sum(weight[t] ** 2 for t in terms)) or 1.0
        for other, other_terms in theirs:
            common = terms & other_terms
            if not common:
                continue
            other_norm = math.sqrt(sum(weight[t] ** 2 for t in other_terms)) or 1.0
            score = sum(weight[t] ** 2 for t in common) / (norm * other_norm)
            if score > best:
                best, pair = score, (sentence, other)
    return pair


def _sentence_terms(story: Story, analyze: Analyzer) -> list[tuple[str, set[str]]]:
    parts = ([story.title] if story.title else []) + sentences(story.body)
    out = []
    for sentence in parts[:MAX_SENTENCES]:
        terms = {t for t in analyze(sentence) if " " not in t and _telling(t)}
        if terms:
            out.append((sentence, terms))
    return out
