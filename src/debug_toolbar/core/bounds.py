"""What a record keeps, in size: long values shortened (saying how long they were), sizes estimated.

A record outlives its request: the history keeps it, the pages render it on the event loop.
Whatever the client controls (the path, the query string, headers, cookies) or whatever quotes it
(a log message, an exception) is as large as the server lets through, and in-process or behind a
server without a URL cap that is a megabyte or more. Kept whole, fifty requests with 1 MB query
strings took the process to about 900 MB, and one of them made a 16 MB detail page. So:

* A string a record keeps is at most ``max_value_length`` characters (``shorten``). A longer one
  is cut, and the cut says what was there: ``…(1,048,576 characters, 1,044,523 not kept)``.
* A list of name/value pairs (query parameters, headers, cookies) keeps its first ``MAX_PAIRS``
  entries; the others are counted, not kept.
* A record's size is estimated from what it keeps, in the same walk that shortens it
  (``bound``): strings by their length, containers and numbers by CPython's usual object sizes.
  No serialisation: this runs on the request path. The history holds its records to a byte
  budget with these estimates.

Pages show shorter still (``clip``): a row of the history, the path in the injected toolbar.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

__all__ = (
    "DEFAULT_MAX_VALUE_LENGTH",
    "MAX_MAX_VALUE_LENGTH",
    "MAX_PAIRS",
    "MIN_MAX_VALUE_LENGTH",
    "bound",
    "clip",
    "first_pairs",
    "first_query_params",
    "full_length",
    "share",
    "shorten",
)

T = TypeVar("T")

DEFAULT_MAX_VALUE_LENGTH = 4096
"""Characters kept per recorded value by default: a long cookie or a stack trace fits."""

MIN_MAX_VALUE_LENGTH = 256
"""The smallest ``max_value_length``: room for the note that says what was cut, and some text."""

MAX_MAX_VALUE_LENGTH = 16 * 1024 * 1024
"""The largest ``max_value_length``: beyond it, one value alone makes a page no browser shows."""

MAX_PAIRS = 100
"""Name/value pairs kept per list (query parameters, request and response headers, cookies).
Browsers send a few dozen headers; more than this is a request built to be large."""

_NOTE = "…({total:,} characters, {dropped:,} not kept)"
_MIDDLE_NOTE = " …({total:,} characters, {dropped:,} not kept)… "
_RUNS_OF_AMPERSANDS = re.compile("&{2,}")
_NOTE_AT_END = re.compile(r"…\(([\d,]+) characters, [\d,]+ not kept\)\Z")
_MAX_DEPTH = 64
"""Nesting walked by ``bound``; deeper values are kept as they are (stats are shallow)."""

# Approximate CPython (64-bit) object sizes, in bytes: what a kept value costs beyond its text.
_STR = 49
_NUMBER = 32
_OTHER = 64
_LIST = 56
_TUPLE = 40
_DICT = 64
_POINTER = 8
_DICT_ENTRY = 40
_FIELD_NAME = 64
"""Dict keys up to this long are counted as shared: field names (``"level"``, ``"name"``) are
interned literals that every record points to, not copies."""


def shorten(text: str, limit: int, *, keep_end: bool = False) -> str:
    """``text`` if it has at most ``limit`` characters, else a cut of it, note included, that does.

    The note gives the full length and what was not kept. ``keep_end`` keeps the start and the
    end around the note, for a traceback, whose last lines name the error. Idempotent: a
    shortened value is never longer than ``limit``, so shortening it again changes nothing.
    """
    total = len(text)
    if total <= limit:
        return text
    template = _MIDDLE_NOTE if keep_end else _NOTE
    # The note's length depends on what is kept; measured with the widest number it can show.
    kept = max(limit - len(template.format(total=total, dropped=total)), 0)
    note = template.format(total=total, dropped=total - kept)
    if not keep_end:
        return text[:kept] + note
    head = kept - kept // 2
    tail = kept - head
    return text[:head] + note + (text[total - tail :] if tail else "")


def full_length(text: str) -> int:
    """The length ``text`` had before ``shorten`` cut it (from its note), or its length."""
    match = _NOTE_AT_END.search(text, max(len(text) - 80, 0))
    return int(match.group(1).replace(",", "")) if match else len(text)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters for display, stating its full length when cut.

    For places that show a value in passing (a row of the history, the injected toolbar); the
    value's own page shows all that the record keeps. The full length is the original one,
    read from the note when the record had already shortened the value.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({full_length(text):,} characters)"


def first_pairs(pairs: Iterable[T], max_pairs: int = MAX_PAIRS) -> tuple[list[T], int]:
    """The first ``max_pairs`` items, and how many more there were."""
    items = pairs if isinstance(pairs, list) else list(pairs)
    if len(items) <= max_pairs:
        return items, 0
    return items[:max_pairs], len(items) - max_pairs


def first_query_params(query: str, max_pairs: int = MAX_PAIRS) -> tuple[list[list[str]], int]:
    """The first ``max_pairs`` fields of a query string, decoded, and how many more it has.

    Only the kept fields are split and decoded: a megabyte of ``a=1&`` is some 260,000 fields,
    which ``parse_qsl`` would turn into as many tuples (tens of MB) only for most to be dropped;
    the others are counted with string scans. Empty fields (``a=1&&b=2``) are skipped, as
    ``parse_qsl`` does.
    """
    fields = query.split("&", max_pairs)
    dropped = 0
    if len(fields) > max_pairs:
        rest = fields.pop()
        if "&&" in rest:
            rest = _RUNS_OF_AMPERSANDS.sub("&", rest)
        rest = rest.strip("&")
        dropped = rest.count("&") + 1 if rest else 0
    pairs = parse_qsl("&".join(fields), keep_blank_values=True)
    return [[name, value] for name, value in pairs], dropped


_shared: dict[int, object] = {}
"""Containers marked with ``share``, by id (the object is kept, so its id is never reused)."""


def share(value: T) -> T:
    """Mark ``value`` and the containers in it as kept for the process's life and read-only.

    For stats computed once and put in every record (the versions panel's package list): the
    memory is spent once, not per record, so ``bound`` counts them as a pointer and does not
    walk them on every request. Nor does it shorten them: only for data the panel built itself,
    never request data.
    """
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (dict, list, tuple)) and id(item) not in _shared:
            _shared[id(item)] = item
            stack.extend(item.values() if isinstance(item, dict) else item)
    return value


def bound(value: T, limit: int | None) -> tuple[T, int]:
    """``value`` with every string longer than ``limit`` shortened, and its approximate size.

    ``value`` is JSON-like data (a panel's stats): dicts, lists, tuples, strings, numbers,
    ``None``. Containers are copied only where something was shortened, so data shared by many
    records (the versions panel's package list) stays shared. Long dict keys are shortened too.
    With ``limit`` None nothing is shortened: the size alone. Other objects are kept as they
    are and counted at a flat rate. Runs on the request path, hence the inlined leaves.
    """
    walker = _Walker(sys.maxsize if limit is None else limit)
    bounded = walker.walk(value, 0)
    return bounded, walker.size


class _Walker:
    """One ``bound`` call: the limit, the size so far, and the containers already seen."""

    __slots__ = ("limit", "seen", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.seen: dict[int, Any] = {}

    def walk(self, item: Any, depth: int) -> Any:
        kind = type(item)
        if kind is str or (kind is not dict and kind is not list and isinstance(item, str)):
            if len(item) > self.limit:
                item = shorten(str(item), self.limit)
            self.size += _STR + len(item)
            return item
        if item is None or kind is bool:
            return item
        if kind is int or kind is float:
            self.size += _NUMBER
            return item
        if depth >= _MAX_DEPTH:
            self.size += _OTHER
            return item
        key = id(item)
        seen = self.seen
        if key in seen:  # seen before (or a cycle): one more pointer to the same object
            self.size += _POINTER
            return seen[key]
        if key in _shared:
            self.size += _POINTER
            return item
        seen[key] = item
        if kind is list or kind is tuple:
            item = self._sequence(item, kind, depth + 1)
        elif kind is dict or isinstance(item, Mapping):
            item = self._mapping(item, depth + 1)
        else:
            self.size += _OTHER
        seen[key] = item
        return item

    def _mapping(self, item: Mapping[Any, Any], depth: int) -> Any:
        limit = self.limit
        size = _DICT + _DICT_ENTRY * len(item)
        copy: dict[Any, Any] | None = None
        odd_keys = False
        for name, entry in item.items():
            if type(name) is not str or len(name) > _FIELD_NAME:
                odd_keys = True
            kind = type(entry)
            if kind is str:
                length = len(entry)
                if length <= limit:
                    size += _STR + length
                    continue
                new = shorten(entry, limit)
                size += _STR + len(new)
            elif kind is int or kind is float:
                size += _NUMBER
                continue
            elif entry is None or kind is bool:
                continue
            else:
                new = self.walk(entry, depth)
                if new is entry:
                    continue
            if copy is None:
                copy = dict(item)
            copy[name] = new
        self.size += size
        if odd_keys:
            source = item if copy is None else copy
            renamed = {self.walk(name, depth): entry for name, entry in source.items()}
            if any(new is not old for new, old in zip(renamed, source, strict=False)):
                copy = renamed
        if copy is None and type(item) is not dict:
            copy = dict(item)  # a plain dict in the record, whatever mapping the panel built
        return item if copy is None else copy

    def _sequence(self, item: list[Any] | tuple[Any, ...], kind: type, depth: int) -> Any:
        limit = self.limit
        size = (_LIST if kind is list else _TUPLE) + _POINTER * len(item)
        copy: list[Any] | None = None
        for index, entry in enumerate(item):
            entry_kind = type(entry)
            if entry_kind is str:
                length = len(entry)
                if length <= limit:
                    size += _STR + length
                    continue
                new = shorten(entry, limit)
                size += _STR + len(new)
            elif entry_kind is int or entry_kind is float:
                size += _NUMBER
                continue
            elif entry is None or entry_kind is bool:
                continue
            elif (
                entry_kind is list
                and len(entry) == 2
                and type(name := entry[0]) is str
                and type(value := entry[1]) is str
                and len(name) <= limit
                and len(value) <= limit
            ):
                # A name/value pair (a header, a cookie): the common case, measured inline.
                size += _LIST + 2 * _POINTER + 2 * _STR + len(name) + len(value)
                continue
            else:
                new = self.walk(entry, depth)
                if new is entry:
                    continue
            if copy is None:
                copy = list(item)
            copy[index] = new
        self.size += size
        if copy is None:
            return item
        return copy if kind is list else tuple(copy)
