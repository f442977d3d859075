"""RFC 6901 JSON Pointers into a decoded reply, and how a reply's names compare (`fold_name`).

Shared by the REST definitions (`keyform.manifest.restdef`, which re-exports them) and the listing
checks of the providers (`keyform.providers.omitted`): kept apart, and importing nothing, so a
built-in provider's plan does not import the REST definition loader for them."""

from __future__ import annotations

from typing import Any


def pointer(text: str) -> tuple[str, ...]:
    """RFC 6901 `/a/b~1c/0` → ("a", "b/c", "0"); "" → () (the whole document)."""
    if not text:
        return ()
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in text[1:].split("/"))


def pointer_text(tokens: tuple[str, ...]) -> str:
    """The RFC 6901 text of `tokens`, as messages show a pointer: ("a", "b/c") → `/a/b~1c`."""
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def fold_name(name: str) -> str:
    """A reply's name as the omitted-list rule compares it (`keyform.providers.omitted`): lower case,
    without `_` and `-` (`first_page_uri`, `firstPageUri` and `First-Page-URI` are one name)."""
    return name.lower().replace("_", "").replace("-", "")


_MISSING = object()


def at(doc: Any, tokens: tuple[str, ...]) -> Any:
    """The value at `tokens` in `doc`, or None when any step is missing."""
    for token in tokens:
        if isinstance(doc, dict):
            doc = doc.get(token, _MISSING)
            if doc is _MISSING:
                return None
        elif isinstance(doc, list) and token.isascii() and token.isdigit() and int(token) < len(doc):
            # (ASCII digits only: `/items/٣`, an Arabic-Indic three, is no index, as RFC 6901 says)
            doc = doc[int(token)]
        else:
            return None
    return doc
