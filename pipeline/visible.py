"""Text as it may be shown: without control characters (newline and tab kept) and without format characters
(Unicode category Cf: zero-width, bidi overrides such as U+202E, BOM), which would let a title reorder or hide what
a terminal, a web page or a JSON reader displays around it."""
from __future__ import annotations

import re
import unicodedata

_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible_text(text: str) -> str:
    text = _UNPRINTABLE.sub("", text)
    if text.isascii():
        return text
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def visible_fields(fields: dict) -> dict:
    """`fields` with every string value (and every string in a list) visible_text'ed."""
    def clean(value):
        if isinstance(value, str):
            return visible_text(value)
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    return {name: clean(value) for name, value in fields.items()}
