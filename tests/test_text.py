"""hooks/text.py: record text marked, then escaped per card field (contract §7.7, §9).

The Markdown checks render with markdown-it (CommonMark, plus GFM tables and strikethrough): what
matters is what an EHR shows, so "escaped" means the rendered HTML holds no tag, image or link of
the record's making and shows exactly the record's characters.
"""

from __future__ import annotations

import html
import os
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from hooks.text import CLOSE, ELLIPSIS, OPEN, clean, markdown, plain, record

FUZZ_EXAMPLES = int(os.environ.get("IVIG_CDS_FUZZ_EXAMPLES") or 0)
SETTINGS = settings(max_examples=FUZZ_EXAMPLES or 300, derandomize=True, deadline=None)
RENDERER = MarkdownIt("commonmark").enable(["table", "strikethrough"])

HOSTILE = (
    "<img src=x>",
    "![x](http://evil.example/x.png)",
    "[click](javascript:alert(1))",
    "<script>alert(1)</script>",
    "**bold** _em_ `code` ~~gone~~",
    "# heading",
    "1. a list",
    "a | table | row",
    "&lt;img src=x&gt; &#60;b&#62;",
    "\\![x](y)",
    "line one\nline two\r\n\t- item",
    f"{CLOSE}<b>{OPEN}forged{CLOSE}",
    "\u202eevil\u202c",
    "\x00\x07\x1b[31mred\x7f\x85",
)
# Every character class a record can hold: Markdown and HTML punctuation, controls, the marks.
RECORD_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("<>&![]()*_`#+-.|~:\\{}\"' \n\t\r/=" + OPEN + CLOSE + "\u202e\x00\x1b"),
        st.characters(codec="utf-8"),
    ),
    max_size=60,
)
OUR_TEXT = st.text(  # ours: never marked, and no angle brackets in a plain field
    alphabet=st.characters(codec="utf-8", exclude_characters=OPEN + CLOSE + "<>")
)


def visible_html_text(rendered: str) -> str:
    """The characters a reader sees in rendered HTML: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", "", rendered))


def unescaped(markdown_text: str) -> str:
    """The text with every CommonMark backslash escape replaced by a placeholder: what is left
    is the punctuation Markdown would act on."""
    return re.sub(r"\\[!-/:-@\[-`{-~]", "\x1a", markdown_text)


def rendered_line(text: str) -> str:
    return RENDERER.render(f"- Evidence: {markdown(record(text))} (end)")


# --- record() ----------------------------------------------------------------------------------


def test_record_wraps_text_and_empty_stays_empty() -> None:
    assert record("Deep vein thrombosis") == f"{OPEN}Deep vein thrombosis{CLOSE}"
    assert record("") == ""
    assert record("\x00\x07") == ""


def test_a_record_cannot_forge_or_close_a_mark() -> None:
    forged = record(f"x{CLOSE}<img src=x>{OPEN}y")
    assert forged == f"{OPEN}x<img src=x>y{CLOSE}"
    assert markdown(forged) == "x&lt;img src=x&gt;y"


def test_control_characters_go_and_line_breaks_become_spaces() -> None:
    assert clean("a\nb\r\nc\td") == "a b  c d"
    assert clean("\x00\x1b[31mred\x7f\x85") == "[31mred "
    assert clean("\u202eevil\u202c") == "evil"


# --- markdown() ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_record_text_renders_as_its_own_characters(text: str) -> None:
    rendered = rendered_line(text)
    assert "<img" not in rendered and "<a " not in rendered and "<script" not in rendered
    assert "<strong>" not in rendered and "<em>" not in rendered and "<code>" not in rendered
    assert "<h1>" not in rendered and "<ol>" not in rendered and "<del>" not in rendered
    assert rendered.count("<li>") == 1 and "<table>" not in rendered
    assert visible_html_text(rendered).strip() == f"Evidence: {clean(text)} (end)"


def test_the_image_example_of_the_contract_is_escaped() -> None:
    escaped = markdown("Condition: " + record("![x](http://e.example/x.png) <img src=x>"))
    assert escaped.startswith("Condition: ")
    assert "<" not in escaped and "![" not in unescaped(escaped) and "](" not in unescaped(escaped)


def test_our_markdown_is_kept_around_record_text() -> None:
    text = f"**Order:** {record('Privigen *10%*')} ([label](https://doi.org/10.1000/x))"
    assert markdown(text) == r"**Order:** Privigen \*10%\* ([label](https://doi.org/10.1000/x))"
    assert markdown("no record text: **bold** <b>") == "no record text: **bold** <b>"


@SETTINGS
@given(RECORD_TEXT, OUR_TEXT)
def test_markdown_never_lets_record_text_become_markup(text: str, ours: str) -> None:
    escaped = markdown(ours + record(text))
    assert escaped.startswith(ours)
    tail = escaped[len(ours) :]
    assert OPEN not in escaped and CLOSE not in escaped
    assert "<" not in tail and ">" not in tail
    assert "](" not in unescaped(tail) and "![" not in unescaped(tail)
    assert "\n" not in tail and "\r" not in tail


@SETTINGS
@given(RECORD_TEXT)
def test_rendered_record_text_shows_exactly_its_characters(text: str) -> None:
    rendered = rendered_line(text)
    assert re.sub(r"</?(ul|li)>", "", rendered).count("<") == 0  # no tag but the list's
    assert visible_html_text(rendered).strip() == f"Evidence: {clean(text)} (end)"


# --- plain() ------------------------------------------------------------------------------------


def test_plain_replaces_angle_brackets_without_backslashes() -> None:
    text = "Thrombosis risk: " + record("<img src=x> ![x](http://e.example/x.png)\n")
    assert plain(text) == "Thrombosis risk: ‹img src=x› ![x](http://e.example/x.png) "
    assert plain("ours <kept>") == "ours <kept>"


@SETTINGS
@given(RECORD_TEXT, OUR_TEXT)
def test_plain_strips_controls_and_brackets_and_marks(text: str, ours: str) -> None:
    shown = plain(ours + record(text))
    assert shown.startswith(ours)
    tail = shown[len(ours) :]
    assert OPEN not in shown and CLOSE not in shown
    assert "<" not in tail and ">" not in tail
    assert not any(unicodedata.category(char) == "Cc" for char in tail)
    assert tail == clean(text).replace("<", "‹").replace(">", "›")


@SETTINGS
@given(st.lists(st.tuples(RECORD_TEXT, st.booleans()), max_size=6), st.integers(1, 80))
def test_plain_truncates_to_the_limit_and_never_splits_a_mark(
    parts: list[tuple[str, bool]], limit: int
) -> None:
    ours = str.maketrans("", "", "<>")  # our text has no angle brackets in a plain field
    s = "".join(record(text) if marked else clean(text).translate(ours) for text, marked in parts)
    full = plain(s)
    shown = plain(s, limit)
    assert len(shown) <= limit
    assert OPEN not in shown and CLOSE not in shown and "<" not in shown and ">" not in shown
    if len(full) <= limit:
        assert shown == full
    else:
        assert shown.endswith(ELLIPSIS)
        assert full.startswith(shown[: -len(ELLIPSIS)])


def test_truncation_counts_characters_not_marks() -> None:
    s = "Risk: " + record("<" * 10)
    assert plain(s, 16) == "Risk: ‹‹‹‹‹‹‹‹‹‹"
    assert plain(s, 10) == "Risk: ‹‹‹" + ELLIPSIS
    assert plain(s, 1) == ELLIPSIS
    with pytest.raises(ValueError, match="at least 1"):
        plain(s, 0)
