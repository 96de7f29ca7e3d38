"""Text from the patient's record, marked where it enters a finding and escaped per card field.

A finding's strings mix our wording with text the client sent (a condition's name, a medication's
display, a resource id). The rules cannot know which card field a string will end in, so they mark
the client's text with :func:`record`; the card builder then escapes each marked segment for its
field (contract §9 "Escaping per field"): :func:`markdown` for ``detail``, :func:`plain` for the
summary, suggestion labels and action descriptions. Our own wording (rules, catalogue, knowledge)
is never marked, so its Markdown stays Markdown.

The marks are two private-use characters, which no clinical text uses; :func:`record` removes them
from the text it marks, so a record cannot open or close a mark of its own.
"""

from __future__ import annotations

import re
import unicodedata

OPEN = "\ue000"
CLOSE = "\ue001"
ELLIPSIS = "…"
# What a card says of a statement (or figure) the knowledge marks unverified: the one plain phrase
# of contract §7.7. The knowledge keeps the mark itself; a card never says "unverified".
NOT_CHECKED = "wording not yet checked against the source"

# Characters a record's text loses: the marks, control characters (C0, DEL, C1) and the
# bidirectional overrides (they can make text read in another order). Line breaks and other
# whitespace become a space: a record's text never starts a line of our Markdown.
_BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Markdown punctuation that can start or end a construct (emphasis, code, link, image, heading,
# list, table, strikethrough, autolink scheme), each escaped with a backslash in ``detail``.
_MARKDOWN = frozenset("\\`*_{}[]()#+-.!|~:")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_PLAIN = {"<": "‹", ">": "›"}
# The same as str.translate tables: one pass at C speed (a card escapes hundreds of characters).
_DETAIL_TABLE = str.maketrans({**{c: f"\\{c}" for c in _MARKDOWN}, **_HTML})
_PLAIN_TABLE = str.maketrans(_PLAIN)
# A mark runs to its close, else to the next open or the end (a mark left open is record text).
_SEGMENT = re.compile(f"{OPEN}([^{OPEN}{CLOSE}]*)(?:{CLOSE}|(?={OPEN})|\\Z)")


def _clean_char(char: str) -> str:
    """'' for a mark or a control character; a space for one that separates words."""
    if char in (OPEN, CLOSE) or char in _BIDI:
        return ""
    if char.isspace() and char != " ":  # tab, newline, form feed, NEL, U+2028 ...
        return " "
    if unicodedata.category(char) == "Cc":
        return ""
    return char


def clean(text: str) -> str:
    """The text without marks and control characters (word-separating ones become a space)."""
    if text.isprintable() and OPEN not in text and CLOSE not in text:
        return text  # the common case, at C speed
    return "".join(_clean_char(char) for char in text)


def record(text: str) -> str:
    """Mark ``text`` as the patient's record or the client's request (``""`` stays ``""``)."""
    cleaned = clean(str(text))
    return f"{OPEN}{cleaned}{CLOSE}" if cleaned else ""


def is_marked(s: str) -> bool:
    return OPEN in s or CLOSE in s


def _segments(s: str) -> list[tuple[str, bool]]:
    """(text, from the record) in order; a close without an open is dropped."""
    found: list[tuple[str, bool]] = []
    at = 0
    for match in _SEGMENT.finditer(s):
        if match.start() > at:
            found.append((s[at : match.start()].replace(CLOSE, ""), False))
        found.append((match.group(1), True))
        at = match.end()
    if at < len(s):
        found.append((s[at:].replace(CLOSE, ""), False))
    return [(text, marked) for text, marked in found if text]


def _escape_markdown(text: str) -> str:
    return clean(text).translate(_DETAIL_TABLE)


def markdown(s: str) -> str:
    """``s`` for a Markdown field: record text escaped for HTML and Markdown, so that it shows
    as the characters it is and never becomes a tag, an image, a link or emphasis; our text
    unchanged; marks removed."""
    if not is_marked(s):
        return s
    return "".join(_escape_markdown(text) if marked else text for text, marked in _segments(s))


def _truncated(segments: list[tuple[str, bool]], limit: int) -> list[tuple[str, bool]]:
    """At most ``limit`` characters, the last one "…" when anything was cut (marks do not count
    and are never split: each segment keeps its kind)."""
    if sum(len(text) for text, _ in segments) <= limit:
        return segments
    room = limit - len(ELLIPSIS)
    kept: list[tuple[str, bool]] = []
    for text, marked in segments:
        if room <= 0:
            break
        kept.append((text[:room], marked))
        room -= len(text[:room])
    while kept and not kept[-1][0].rstrip():
        kept.pop()
    if kept:
        kept[-1] = (kept[-1][0].rstrip(), kept[-1][1])
    return [*kept, (ELLIPSIS, False)]


def plain(s: str, limit: int | None = None) -> str:
    """``s`` for a plain-text field: record text without control characters and with ``<`` ``>``
    shown as ‹ ›, no backslashes; marks removed. With ``limit``: at most that many characters,
    cut with "…" (the cut is made on the text, before the replacements)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    segments = _segments(s)
    if limit is not None:
        segments = _truncated(segments, limit)
    return "".join(
        clean(text).translate(_PLAIN_TABLE) if marked else text for text, marked in segments
    )
