"""Removing known secret values from text that came from outside (server error bodies, exception
messages) before it is printed, logged or journaled.

The order matters: scrub first, on the raw text, then normalise whitespace and cut. Cutting or
collapsing first lets a secret through: `SUPERSECRET  VALUE123` collapsed to one space no longer
matches, and a secret straddling the cut keeps its first half.

A secret is matched whitespace-insensitively: the text and the secret are compared with every
whitespace character removed (a server that re-wraps a PEM, collapses spaces or turns newlines
into `\\n` escapes still echoes the same visible characters), and the matched span of the original
text, whitespace included, becomes `***`. A secret longer than `WINDOW` visible characters is
matched by every `WINDOW`-character window of it, so any 16 consecutive visible characters of a
secret are removed wherever they appear: a truncated, prefixed or partly escaped echo is caught
(of its first MAX_RAW characters: a longer value is no secret keyform keeps, see `_patterns`).
Its JSON-escaped forms (non-ASCII kept or `\\u`-escaped) and percent-encoded forms are matched
too, and every form regardless of case (`_fold`): an API that upper-cases a name it echoes
(`SECRET-ÄÖ…`), a JSON encoder writing `\\u00C4` (Jackson) for Python's `\\u00c4`, or `%c3%a4`
for `%C3%A4`, still echoes the secret. (A letter whose case changes its length, `ß`/`SS`, is
compared as it is: the windows on either side of it in an upper-cased echo are still caught.)
Base64 (standard or URL-safe, padded or not) is matched by what it decodes to, whatever the byte
offset at which the secret starts in the encoded text, and so is hex (`_decoded_hits`): a secret,
or any 16 bytes of it, from `MIN_BASE64` bytes on.
Secrets shorter than 4 visible characters are not matched (they would redact ordinary words);
nothing keyform handles is that short. Nor is an echo of fewer than `WINDOW` consecutive
characters of a longer secret: a server that quotes a token's first 15 characters shows them.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any, Literal
from urllib.parse import quote, unquote

from keyform.lazyre import LazyPattern

WINDOW = 16
MIN_SECRET = 4
# the fewest bytes of a secret matched in what a base64 or hex text decodes to (`_decoded_hits`): 6 bytes, 8
# characters of base64, 48 bits (about 42 once case is folded, as everything is compared), so a
# pattern occurs by chance in the bytes of random base64 about once in 4 * 10^12 positions: with a
# thousand short secrets remembered, once in 20,000 helper messages of 64 KiB of base64 each, each
# decoded at four alignments. 4 bytes (a `MIN_SECRET` secret) would match by chance in most such
# messages. So a secret of 4 or 5 bytes is matched as it is, not base64-encoded.
MIN_BASE64 = 6
MASK = "***"
# the most raw text examined: far beyond any cut applied afterwards (a secret straddling this
# boundary loses every full window before it, and the part after it is cut away anyway)
MAX_RAW = 65536


_known: set[str] = set()  # every secret this process has seen (see `remember`)
_known_patterns: dict[int, set[str]] = {}  # their patterns, built once per secret (an apply may issue thousands)
_unpatterned: list[str] = []  # remembered, patterns not built yet: built by the next `scrub`, not per secret
_known_lock = threading.Lock()


def remember(*secrets: str | None) -> None:
    """Add secrets this process has handled (resolved tokens and inputs, issued secrets, secrets
    read back from sinks) to the set every `scrub` removes, wherever the text being scrubbed came from:
    a server may echo a secret from another call than the one that carried it."""
    new = [s for s in secrets if s and len(s) >= MIN_SECRET]
    with _known_lock:
        new = [s for s in new if s not in _known]
        _known.update(new)
        _unpatterned.extend(new)  # most applies scrub nothing: an issued secret costs a set insert


def _known_now() -> dict[int, set[str]]:
    """The patterns of every remembered secret, by length (a copy of the index, the sets shared:
    they are only ever added to)."""
    global _known_items
    with _known_lock:
        if _unpatterned:
            for length, pats in _patterns(_unpatterned).items():
                _known_patterns.setdefault(length, set()).update(pats)
            _unpatterned.clear()
            _known_items = tuple(_known_patterns.items())
        return dict(_known_patterns)


_known_items: tuple[tuple[int, set[str]], ...] = ()  # `_known_patterns` as `_known_now` last left it


class _FoldTable(dict[int, str]):
    """`str.translate`'s table for `_fold`, filled as characters are met (at most `_FOLD_CACHED` kept)."""

    def __missing__(self, code: int) -> str:
        out = _fold_char(chr(code))
        if len(self) < _FOLD_CACHED:
            self[code] = out
        return out


def _fold_char(c: str) -> str:
    """`c` case-folded to one character, the same for `c` and for its upper- and lower-case forms
    that are one character: the fold of its upper case first (`ı`, upper `I`, folds to `i` with
    it; `ſ` to `s`; `ς` to `σ`); else its own fold; else a fold that only adds combining marks
    gives its first character (`İ`, `i̇`: `i`, as a Turkish-locale upper case of `i` reads); else
    its lower case; else `c` (`ß`, `ﬁ`)."""
    upper = c.upper()
    if len(upper) == 1 and len(upper.casefold()) == 1:
        return upper.casefold()
    folded = c.casefold()
    if len(folded) == 1:
        return folded
    if all(unicodedata.combining(mark) for mark in folded[1:]):
        return folded[0]
    lower = c.lower()
    return lower if len(lower) == 1 else c


_FOLD_CACHED = 4096
_FOLD = _FoldTable()


def _fold(text: str) -> str:
    """`text` case-folded one character for one (so an index into it is one into `text`): `A` and
    `a`, `Ä` and `ä`, `Σ`, `σ` and `ς`, `ı`, `I`, `i` and `İ` compare equal; a character whose fold
    is longer (`ß`: `ss`) is kept as it is (`_fold_char`)."""
    return text.lower() if text.isascii() else text.translate(_FOLD)


def _visible(text: str, escapes: bool = False) -> tuple[str, list[int]]:
    """`text` without whitespace (and with `escapes`, without terminal escape sequences too:
    `_ESCAPES`), and the index in `text` of each remaining character."""
    hidden: set[int] = set()
    if escapes:
        for m in _ESCAPES.finditer(text):
            hidden.update(range(m.start(), m.end()))
    chars: list[str] = []
    where: list[int] = []
    for i, c in enumerate(text):
        if not c.isspace() and i not in hidden:
            chars.append(c)
            where.append(i)
    return "".join(chars), where


# ANSI/ECMA-48 control sequences (CSI: colours, cursor moves; OSC: titles, hyperlinks) and the
# two-character escapes: what a terminal interprets rather than shows. A helper that colours part of
# a secret (`\x1b[1m` in the middle of it) splits nothing a reader sees, so a text holding one is
# also compared without them (`_views`); and as it is, since such a sequence may end in a letter of
# the secret (`\x1b[` before `A...`: cursor up).
_ESCAPES = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def _has_escapes(text: str) -> bool:
    return "\x1b" in text or "\x9b" in text


def _views(text: str) -> list[str]:
    """`text`'s visible characters as `scrub` compares them: without whitespace, and if it holds
    terminal escapes, also without those (`_ESCAPES`)."""
    views = ["".join(text.split())]
    if _has_escapes(text):
        views.append(_visible(text, escapes=True)[0])
    return views


def _forms(secret: str) -> set[str]:
    """The ways a server's text may carry `secret`: as it is, in each Unicode normal form (a server
    or a helper that normalises, `é` as `e` + U+0301 or the reverse; up to `MAX_NORMALISED`
    characters), each JSON-escaped (non-ASCII
    kept or as `\\u00fc` escapes, Python's and many servers' default; Go's `encoding/json` also
    escapes `<`, `>`, `&`; PHP's `json_encode` writes `/` as `\\/`), HTML-escaped (an HTML error
    page quoting it: `&amp;`) and percent-encoded (an echoed URL or header; `/` kept or encoded).
    For most secrets (letters, digits, `_-.~`) these are one form."""
    forms: set[str] = set()
    normals = {secret}
    if not secret.isascii() and len(secret) <= MAX_NORMALISED:
        normals.update(unicodedata.normalize(n, secret) for n in _NORMAL_FORMS)
    for normal in normals:
        kept = json.dumps(normal, ensure_ascii=False)[1:-1]
        escaped = json.dumps(normal)[1:-1]
        forms.update((normal, kept, escaped, kept.translate(_GO_JSON), html.escape(normal)))
        if "/" in normal:  # PHP's json_encode (and others) write `/` as `\/`
            forms.update((kept.replace("/", "\\/"), escaped.replace("/", "\\/")))
        with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate (an API's \ud800 escape): no URL carries it
            forms.update((quote(normal, safe="/"), quote(normal, safe="")))
    return forms


# the longest secret whose other Unicode normal forms are matched: each is up to 6 more forms, each
# of up to MAX_RAW windows; a hostile API's 64 KiB non-ASCII "secret" would cost 25 forms' windows
# (~150 MB). A non-ASCII secret a person chose, or an API issued, is far shorter.
MAX_NORMALISED = 4096
_NORMAL_FORMS: tuple[Literal["NFC", "NFD", "NFKC", "NFKD"], ...] = ("NFC", "NFD", "NFKC", "NFKD")
_GO_JSON = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _bytes_form(secret: str) -> set[str]:
    """A non-ASCII `secret`'s UTF-8 bytes, one character each (latin-1): how `_decoded_hits` compares
    the bytes a base64 text decodes to (an ASCII secret is its own, no form added)."""
    if secret.isascii():
        return set()
    try:
        return {secret.encode("utf-8").decode("latin-1")}
    except UnicodeEncodeError:  # a lone surrogate: no encoder of UTF-8 bytes carries it
        return set()


def _patterns(secrets: Iterable[str]) -> dict[int, set[str]]:
    """Visible-character patterns to remove, grouped by length.

    Only the windows of the first MAX_RAW characters of a secret, and of the first MAX_RAW visible
    characters of each of its forms: a hostile API's 8 MB "secret" made every window of every form,
    1.5 GB and 13 s, before the applier saw it. That is enough: `scrub` looks at no more than MAX_RAW
    characters of a text, and a secret longer than MAX_RAW (`remote.MAX_SECRET`, the same number) is
    refused and its key revoked: it reaches no sink. What is masked: every window of every secret
    keyform accepts, raw (and of its escaped forms, as far as their first MAX_RAW characters), and of
    a longer one the windows of its first MAX_RAW characters; an echo of only its later part is not
    (that key is revoked at once). A whole value is still compared whole where it matters, an id
    (`holds_whole`)."""
    out: dict[int, set[str]] = {}
    for secret in secrets:
        if not secret:
            continue
        for form in _forms(secret[:MAX_RAW]) | _bytes_form(secret[:MAX_RAW]):
            core = _fold("".join(form.split())[:MAX_RAW])
            if len(core) < MIN_SECRET:
                continue
            if len(core) <= WINDOW:
                out.setdefault(len(core), set()).add(core)
            else:
                out.setdefault(WINDOW, set()).update(core[i:i + WINDOW] for i in range(len(core) - WINDOW + 1))
    return out


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` (at most MAX_RAW characters of it) with every span that matches a known secret
    replaced by `***` (see the module docstring). Whitespace is kept as it was elsewhere."""
    text = text[:MAX_RAW]
    if _watch_pending is not None or _watched:  # a secret the state knows by fingerprint: remembered now
        _recognise(text)
    patterns = _patterns(secrets)
    known = _known_now()
    if not (patterns or known) or not text:
        return text
    shown, where = _visible(text)
    hit = _hits(shown, patterns, known)
    if _has_escapes(text):  # compared without its escapes too: a match there covers what it spans
        bare, at = _visible(text, escapes=True)
        index = {k: v for v, k in enumerate(where)}
        also = _hits(bare, patterns, known)
        i = 0
        while i < len(bare):
            if also[i]:
                j = i
                while j + 1 < len(bare) and also[j + 1]:
                    j += 1
                for k in range(at[i], at[j] + 1):
                    if k in index:
                        hit[index[k]] = 1
                i = j
            i += 1
    if not any(hit):
        return text
    out: list[str] = []
    pos = 0
    i = 0
    while i < len(shown):
        if not hit[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(shown) and hit[j + 1]:
            j += 1
        out.append(text[pos:where[i]])
        out.append(MASK)
        pos = where[j] + 1
        i = j + 1
    out.append(text[pos:])
    return "".join(out)


def _hits(shown: str, patterns: dict[int, set[str]], known: dict[int, set[str]]) -> bytearray:
    """Which characters of `shown` (a text's visible characters) belong to a match of a pattern,
    as it is (folded: `_patterns`) or encoded (`_decoded_hits`)."""
    visible = _fold(shown)
    hit = bytearray(len(visible))
    empty: set[str] = set()
    for length in set(patterns) | set(known):
        mine, theirs = patterns.get(length, empty), known.get(length, empty)
        for i in range(len(visible) - length + 1):
            piece = visible[i:i + length]
            if piece in mine or piece in theirs:
                hit[i:i + length] = b"\1" * length
    _decoded_hits(shown, patterns, known, hit)
    return hit


_BASE64_RUN = re.compile(rf"[A-Za-z0-9+/_-]{{{MIN_BASE64 * 4 // 3},}}")
_HEX_RUN = re.compile(rf"[0-9A-Fa-f]{{{MIN_BASE64 * 2},}}")
_TO_STANDARD = str.maketrans("-_", "+/")


def _decoded_hits(shown: str, patterns: dict[int, set[str]], known: dict[int, set[str]], hit: bytearray) -> None:
    """Mark in `hit` the characters of `shown` (a text's visible characters) that encode a known
    secret, or any 16 bytes of one, in base64 (standard or URL-safe, padded or not) or in hex, at
    any byte offset: each run of base64 characters is decoded at each of its four character
    alignments, each run of hex digits at its two, the bytes compared as `scrub` compares text
    (whitespace and case aside), and the characters that only the matched bytes decide are marked
    (in base64, the one or two at each end that share bits with the bytes around are not: together
    at most 8 bits of the secret). Patterns shorter than `MIN_BASE64` bytes are not looked for
    (see there). Linear in the text: 6 decodes, one pass per pattern length."""
    lengths = sorted(n for n in set(patterns) | set(known) if n >= MIN_BASE64)
    if not lengths:
        return
    for run in _BASE64_RUN.finditer(shown):
        chars = run[0].translate(_TO_STANDARD)
        for align in range(4):
            body = chars[align:]
            rest = len(body) % 4
            body = body[:-1] if rest == 1 else body + "=" * ((4 - rest) % 4)
            if len(body) * 3 // 4 < MIN_BASE64:
                break
            for first, last in _matched(base64.b64decode(body), lengths, patterns, known):
                lo, hi = run.start() + align + -(-8 * first // 6), run.start() + align + 8 * last // 6
                hit[lo:hi] = b"\1" * (hi - lo)
    for run in _HEX_RUN.finditer(shown):
        for align in range(2):
            body = run[0][align:len(run[0]) - (len(run[0]) - align) % 2]
            for first, last in _matched(bytes.fromhex(body), lengths, patterns, known):
                hit[run.start() + align + 2 * first:run.start() + align + 2 * last] = b"\1" * (2 * (last - first))


def _matched(data: bytes, lengths: list[int], patterns: dict[int, set[str]],
             known: dict[int, set[str]]) -> list[tuple[int, int]]:
    """The byte ranges of `data` that hold a pattern (its bytes one character each, as `_bytes_form`
    gives a non-ASCII secret's), compared without whitespace and case."""
    decoded, where = _visible(_fold(data.decode("latin-1")))
    empty: set[str] = set()
    found: list[tuple[int, int]] = []
    for length in lengths:
        mine, theirs = patterns.get(length, empty), known.get(length, empty)
        for i in range(len(decoded) - length + 1):
            piece = decoded[i:i + length]
            if piece in mine or piece in theirs:
                found.append((where[i], where[i + length - 1] + 1))
    return found


def redact(text: str, secrets: Iterable[str], limit: int = 300) -> str:
    """Scrub `text`, then collapse its whitespace to single spaces and cut it to `limit` characters."""
    return " ".join(scrub(text, secrets).split())[:limit]


def exception_line(exc: BaseException, limit: int = 300) -> str:
    """`RuntimeError: its text's first line`, scrubbed of every remembered secret before the text is
    cut (a secret may straddle a line break or the cut), at most `limit` characters of its text: how
    a plug-in's own exception is said."""
    text = scrub(str(exc), ()).strip()
    return f"{type(exc).__name__}{': ' + text.splitlines()[0][:limit] if text else ''}"


def holds_known(text: str) -> bool:
    """Whether `text` holds a secret this process remembered (as `scrub` matches one), or one the
    state knows by fingerprint (`watch`: then it is remembered, so `scrub` removes it): a cheap test
    for the many short values (names, descriptions) that hold none."""
    watched = _watched if _watch_pending is None else _watched_now()
    if not _known_items and not _unpatterned and not watched:
        return False
    if watched:
        _recognise(text)  # every watched secret in it is remembered, so the checks below see it
    if _unpatterned:
        _known_now()
    known = _known_items  # one read of a tuple: no lock, no copy (called for every listed name)
    for view in _views(text):
        visible = _fold(view)
        for length, patterns in known:
            for i in range(len(visible) - length + 1):
                if visible[i:i + length] in patterns:
                    return True
    return False


def holds_whole(text: str, secrets: Iterable[str | None]) -> bool:
    """Whether `text` holds the whole of one of `secrets` (of at least MIN_SECRET visible
    characters), in any form `scrub` matches: whitespace and case ignored, JSON- or percent-encoded. For a
    value that is shown and recorded as it is, an id: unlike `holds_known`, a value that shares
    only a 16-character window with a secret is not caught (a SendGrid secret, `SG.<id>.<...>`,
    holds its key's id; the id does not hold the secret)."""
    wanted = list(secrets)
    return any(_holds_whole(_fold(view), wanted) for view in _views(text))


def _holds_whole(visible: str, secrets: list[str | None]) -> bool:
    """`holds_whole` of one view of a text (`_views`), folded."""
    for secret in secrets:
        # no form is shorter than a third of the secret's visible characters (escapes only add; a
        # normal form composes at most three into one: Hangul jamo): a secret longer than that is
        # not in `text`, and its forms (of a hostile API's megabytes) are not built
        if not secret or len("".join(secret.split())) > 3 * len(visible):
            continue
        for form in _forms(secret):
            core = _fold("".join(form.split()))
            if len(core) >= MIN_SECRET and core in visible:
                return True
    return False


# Issued secrets the state records by fingerprint (`watch`): (visible length, fingerprints) and the
# function that fingerprints a candidate. A later process holds no such secret, but can recognise
# one an API echoes: a window of that length is fingerprinted wherever a secret could start (the
# text's start, or after a character that is not a letter or digit), in the first MAX_WATCH_SCAN
# visible characters of a value. What it finds is remembered, so `scrub` removes it as any other.
# A value with escapes is also scanned percent- and JSON-decoded. A window whose letters are all of one
# case is also fingerprinted in the other (`_other_case`: a single-case secret echoed upper- or
# lower-cased). Not found: an echo glued to letters or digits before it, cut short, or of a mixed-case
# secret in another case (only the process that holds a secret matches those: `remember`).
_watched: tuple[tuple[int, frozenset[str]], ...] = ()
_watch_fingerprint: Callable[[str], str] | None = None
_watch_pending: list[str] | None = None  # given to `watch`, indexed by the first look (most plans: none)
MAX_WATCHED_LENGTHS = 8  # distinct secret lengths recognised (an API issues secrets of one or two lengths)
MAX_WATCH_SCAN = 4096  # visible characters of a value examined (a name or a message, not a document)
_ESCAPE_BEFORE = LazyPattern(r"(?:%[0-9A-Fa-f]{2}|\\[nrtbf]|\\u[0-9A-Fa-f]{4})$")


def watch(fingerprint: Callable[[str], str], recorded: Iterable[str]) -> None:
    """Recognise the secrets `recorded` (`<visible length>:<fingerprint>`, `State.secret_fingerprint`)
    wherever `mask`/`holds_known`/`scrub` look, fingerprinting candidates with `fingerprint`. Each
    call replaces the last (one state per process). A malformed entry is skipped."""
    global _watch_fingerprint, _watch_pending
    with _known_lock:
        _watch_fingerprint, _watch_pending = fingerprint, list(recorded)


def _watched_now() -> tuple[tuple[int, frozenset[str]], ...]:
    """`_watched`, indexed from what `watch` was given, once."""
    global _watched, _watch_pending
    with _known_lock:
        if _watch_pending is not None:
            _watched = _indexed(_watch_pending)
            _watch_pending = None
        return _watched


def _indexed(recorded: Iterable[str]) -> tuple[tuple[int, frozenset[str]], ...]:
    """Fingerprints as `watch` takes them, by visible length (malformed ones skipped)."""
    by_length: dict[int, set[str]] = {}
    for entry in recorded:
        length, _, fp = entry.partition(":")
        if length.isdigit() and fp and MIN_SECRET <= int(length) <= MAX_WATCH_SCAN:
            by_length.setdefault(int(length), set()).add(fp)
    # each length costs a fingerprint per candidate window of every value looked at: a state
    # with many lengths (hand-edited, hostile) would make every mask slow; the most used count
    kept = sorted(by_length, key=lambda n: -len(by_length[n]))[:MAX_WATCHED_LENGTHS]
    return tuple((n, frozenset(by_length[n])) for n in sorted(kept))


def recognise(text: str, fingerprint: Callable[[str], str], recorded: Iterable[str]) -> None:
    """Remember each secret of `recorded` (fingerprints as `watch` takes them) that `text` holds, as
    `watch` would, so that `scrub` removes it from `text` and from every later message; what `watch`
    was given stays as it is. For a message about a secret this process never held: the error of a
    sink's read of an entry an interrupted create wrote, quoting what the entry holds."""
    _recognise(text, _indexed(recorded), fingerprint)


def _recognise(text: str, watched: tuple[tuple[int, frozenset[str]], ...] | None = None,
               fingerprint: Callable[[str], str] | None = None) -> None:
    """Remember every watched secret in `text` (compared without whitespace, as `scrub` does), as it
    is and, when it holds escapes, percent- and JSON-decoded: an API that echoes a secret in a URL
    or a raw JSON body encodes it, and `scrub` removes the encoded forms of a remembered secret.
    `watched` and `fingerprint`: other secrets than `watch`'s, and how to fingerprint them."""
    if watched is None:
        watched = _watched if _watch_pending is None else _watched_now()
        fingerprint = _watch_fingerprint
    if not watched or fingerprint is None or len(text) < watched[0][0]:  # most names: shorter than any secret
        return
    found = _scan(text, watched, fingerprint)
    if "%" in text or "\\" in text:
        decoded = _JSON_ESCAPE.sub(_unescape, unquote(text))
        if decoded != text:
            found += _scan(decoded, watched, fingerprint)
    if found:
        remember(*found)


_JSON_ESCAPE = LazyPattern(r"\\(?:u([0-9A-Fa-f]{4})|([\"\\/bfnrt]))")
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(m: re.Match[str]) -> str:
    if m[1]:
        return chr(int(m[1], 16))
    return _SIMPLE_ESCAPES.get(m[2], m[2])


def _scan(text: str, watched: tuple[tuple[int, frozenset[str]], ...], fingerprint: Callable[[str], str]) -> list[str]:
    """The watched secrets in `text`: a window of each recorded length fingerprinted wherever a
    secret could start."""
    chars: list[str] = []
    starts: list[int] = []
    before = ""
    for j, c in enumerate(text):
        if len(chars) >= MAX_WATCH_SCAN:
            break
        if c.isspace():
            before = c
            continue
        # the text's start, after a space or punctuation, or after an escape that ends in a letter or
        # digit: `%3D` (a percent-encoded separator), `\n` or `\u0022` (a JSON body quoted raw)
        if not before.isalnum() or _ESCAPE_BEFORE.search(text, max(0, j - 6), j):
            starts.append(len(chars))
        chars.append(c)
        before = c
    visible = "".join(chars)
    found = []
    for length, fps in watched:
        for i in starts:
            if i + length > len(visible):
                break
            window = visible[i:i + length]
            other = _other_case(window)
            try:
                if fingerprint(window) in fps or (other is not None and fingerprint(other) in fps):
                    found.append(window)
            except Exception:  # a keyed state whose key is not attached: nothing can be recognised
                return []
    return found


def _other_case(window: str) -> str | None:
    """The one other spelling of `window` a single-case secret may have had: its lower case if all
    its letters are upper case (a hex or lower-case token an API upper-cased), its upper case if all
    are lower case; None for no letters or mixed case. A mixed-case secret echoed in another case is
    not recognised by its fingerprint: the state records one of its exact visible characters
    (`State.secret_fingerprint`, which recovery also compares with a sink's entry), and the spelling
    it had cannot be recovered from an upper- or lower-cased echo; that would take a second
    fingerprint, of its case-folded form, in the state. The process that holds the secret matches
    it in any case (`remember`)."""
    if window.isupper():
        return window.lower()
    if window.islower():
        return window.upper()
    return None


def mask(value: Any) -> Any:
    """`value` (a remote attribute: text, or lists and objects of them) with every string that
    holds a remembered secret scrubbed; `value` itself when none does. For values an API sent that
    keyform shows or records (plans, the state, reports): a hostile or careless API may put a
    secret it was given, or issued, into a name or a description."""
    if isinstance(value, str):
        return scrub(value, ()) if holds_known(value) else value
    if isinstance(value, list):
        masked = [mask(v) for v in value]
        return value if all(a is b for a, b in zip(masked, value)) else masked
    if isinstance(value, dict):
        out = {k: mask(v) for k, v in value.items()}
        return value if all(out[k] is v for k, v in value.items()) else out
    return value
