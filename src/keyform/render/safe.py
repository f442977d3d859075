"""Text from outside keyform made safe to show: on a terminal, inside a code block, in Markdown.

Outside text reaches every output: attribute values, names and ids an API returned, server error
messages, sink entry names and policy messages from manifests a contributor wrote. A control
character drives a terminal (ESC clears the screen, OSC 8 makes a hidden link, a title is set); a
bidi override or a zero-width character makes a reviewer read something else than what changes
(Trojan Source); a newline closes a Markdown code fence or a table row; Markdown and HTML in a
pull-request comment add headings, images fetched from anywhere, live links, and @mentions that
notify people. And a long value, repeated in every row of a padded table, multiplies an output's
size: cells are cut (`cut`).
"""

from __future__ import annotations

import json
import math
import re

from keyform.lazyre import LazyPattern

# C0 controls but tab and newline, DEL, C1 (0x9b is an 8-bit CSI), the bidi controls and marks,
# the zero-width space and word joiner, the line and paragraph separators and the byte-order mark.
# The zero-width (non-)joiner U+200C/U+200D only where no script needs it: emoji sequences (👩‍💻)
# and Persian or Indic words are written with them (`_in_place`). And a lone surrogate (an API's
# `\ud800` escape decodes to one): no terminal, file or pipe can encode it, so it is shown as its
# escape.
UNSAFE = LazyPattern("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u2069\ufeff"
                     "\ud800-\udfff"
                     # invisible too, so `"desc"` and `"de\u00adsc"` read the same in a diff: the soft
                     # hyphen, the combining grapheme joiner, Hangul and Khmer fillers, the Mongolian
                     # selectors, the other format controls, the interlinear annotation marks, the
                     # variation selectors but the emoji ones (U+FE0E/F: ❤️), and the tag characters,
                     # which can spell out a whole hidden text
                     "\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u206a-\u206f\u3164"
                     "\ufe00-\ufe0d\uffa0\ufff9-\ufffb\U00013430-\U0001343f\U0001bca0-\U0001bca3"
                     "\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef"
                     # and the joiners, but where a script or an emoji sequence needs them (`_in_place`)
                     "\u200c\u200d]")
# UNSAFE, and the tab and newline that would break a one-line cell or label
_UNSAFE_OR_BREAK = LazyPattern(UNSAFE.pattern[:-1] + "\t\n]")
# What of UNSAFE ASCII text can hold: most output is ASCII, and `re` scans a character class with
# ranges beyond U+FFFF about eight times slower (a 3 MB `report --format json` took 0.12 s to search)
_ASCII_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
_ASCII_UNSAFE_OR_BREAK = re.compile("[\x00-\x1f\x7f]")
_BACKTICKS = re.compile("`+")
# The widest a table cell gets in text and Markdown: a remote name or id, a date, a rule.
MAX_CELL = 60


def _code(m: re.Match[str]) -> str:
    """A character's `\\u` escape; one beyond U+FFFF (a tag character) as its surrogate pair, as
    JSON writes it: `\\ue0041` would read back as U+E004 and a "1" (`json_doc` escapes JSON text)."""
    n = ord(m[0])
    if n > 0xFFFF:
        n -= 0x10000
        return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"
    return f"\\u{n:04x}"


def escaped(text: str) -> str:
    """`text` with each unsafe character shown as its `\\u` escape, four hex digits (`\\u202e`);
    tab and newline kept; the invisible characters a script or an emoji writes with, in place, kept
    (`_in_place`)."""
    if text.isascii():
        return _ASCII_UNSAFE.sub(_code, text) if _ASCII_UNSAFE.search(text) else text
    return UNSAFE.sub(_code_unless_in_place, text) if UNSAFE.search(text) else text


def _code_unless_in_place(m: re.Match[str]) -> str:
    return m[0] if _in_place(m.string, m.start()) else _code(m)


# The three flags written with tag characters (England, Scotland, Wales): 🏴 and the tags of
# `gbeng`, `gbsct`, `gbwls`, then the cancel tag. Any other tag run can spell a hidden text.
_TAG_FLAGS = frozenset("\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in code) + "\U000e007f"
                       for code in ("gbeng", "gbsct", "gbwls"))


def _in_place(text: str, i: int) -> bool:
    """Whether the invisible character at `text[i]` is one a writing system or an emoji needs
    there: a joiner (U+200C/D) between two characters that are not ASCII (👩‍💻, Persian, Indic;
    between ASCII letters it only hides a change), an ideographic variation selector after a CJK
    ideograph (葛󠄀), a Mongolian one after a Mongolian letter, or a tag of one of the three flags."""
    c = ord(text[i])
    before = ord(text[i - 1]) if i else 0
    if c in (0x200C, 0x200D):
        return i > 0 and i + 1 < len(text) and before > 0x7F and ord(text[i + 1]) > 0x7F \
            and not text[i - 1].isspace() and not text[i + 1].isspace()
    if 0xE0100 <= c <= 0xE01EF:
        return 0x3400 <= before <= 0x9FFF or 0xF900 <= before <= 0xFAFF or 0x20000 <= before <= 0x3FFFF
    if 0x180B <= c <= 0x180F:
        return 0x1800 <= before <= 0x18AF and c != 0x180E  # (U+180E, the vowel separator: a space)
    if 0xE0020 <= c <= 0xE007F:
        start = text.rfind("\U0001f3f4", max(0, i - 6), i)
        return start >= 0 and text[start:start + 7] in _TAG_FLAGS
    return False


def json_doc(doc: object, *, indent: int | None = None) -> str:
    """`doc` as JSON with non-ASCII kept, except what `escaped` escapes (bidi controls, zero-width
    characters, C1, the line separators), written as JSON `\\u` escapes: the same document to a
    parser, but a terminal or a log viewer showing the line shows no reordered or hidden text.
    A float that JSON cannot hold (NaN, an infinity: `json.dumps` writes `Infinity`, which no JSON
    parser reads) is written `null`: the output is always JSON."""
    try:
        text = json.dumps(doc, ensure_ascii=False, indent=indent, allow_nan=False)
    except ValueError:  # (a bug elsewhere let one through: the rest of the document still reads)
        text = json.dumps(_finite(doc), ensure_ascii=False, indent=indent, allow_nan=False)
    return escaped(text)


def _finite(value: object) -> object:
    """`value` with every NaN or infinite float (in dicts, lists and tuples) made None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def one_line(text: str) -> str:
    """`escaped`, on one line: a newline shown as `\\n`, a tab as a space."""
    text = escaped(text)
    return text.replace("\n", "\\n").replace("\t", " ") if "\n" in text or "\t" in text else text


def blanked(text: str) -> str:
    """`text` on one line with each unsafe character, tab and newline shown as `?`: for fixed-width
    cells and graph labels, where an escape's length would matter more than which character it was."""
    return (_ASCII_UNSAFE_OR_BREAK if text.isascii() else _UNSAFE_OR_BREAK).sub("?", text)


def cut(text: str, limit: int | None = MAX_CELL) -> str:
    """`text` cut to `limit` characters, the last one `…`: a table pads every row to its widest cell,
    so one 200,000-character remote name made 2,000 rows 400 MB. Cut after escaping (an escape is
    longer than its character), before any quoting that must stay whole."""
    return text if limit is None or len(text) <= limit else text[:limit - 1] + "…"


def quoted(text: str, limit: int = MAX_CELL) -> str:
    """A value a user gave (a flag's, a variable's, an argument) as a message quotes it: in quotes,
    on one line, cut to `limit` characters: a 5,000-character `--target` was repeated whole."""
    return f"'{cut(one_line(text), limit)}'"


def md_text(text: str, *, table: bool = True) -> str:
    """`one_line` as literal Markdown: a code span (`` `text` ``), fenced by one backtick more than
    the longest run in the text, and padded with a space when the text starts or ends with a
    backtick or a space (CommonMark strips one from each side again). `table`: inside a table cell,
    where GFM splits the row on every unescaped `|` before it parses any span, so `|` is `\\|`
    (which GFM's table extension turns back into `|`, even inside a code span); elsewhere `\\|`
    would show its backslash.

    Why a code span, not backslash escapes: nothing inside one is Markdown, HTML, an entity or a
    link, and GitHub's own passes over the rendered HTML (@mentions, #issue and commit links,
    `:emoji:`) skip `<code>`. Escaping is not enough: GFM's extended autolinks (cmark-gfm
    `extensions/autolink.c`) are found in plain text, where `a\\@b.example` still renders as a
    `mailto:` link (the escaped `@` ends up in the same text the e-mail pass scans), and a
    mention or issue link is made from the HTML text, after every escape is gone. The text is
    shown exactly as it is: no character added or hidden, `_` and `www.` included."""
    text = one_line(text)
    if not text:
        return ""
    if table:
        text = text.replace("|", "\\|")
    fence = "`" * (max(map(len, _BACKTICKS.findall(text)), default=0) + 1)
    if text.strip(" ") and (text[0] in "` " or text[-1] in "` "):
        text = f" {text} "
    return f"{fence}{text}{fence}"
