"""Converts a pool_reply_t tree into Python values. Internal."""

from __future__ import annotations

import ctypes

from . import _native
from .errors import ReplyError

_T = _native.REPLY_TYPES
STRING = _T["POOL_REPLY_STRING"]
ARRAY = _T["POOL_REPLY_ARRAY"]
INTEGER = _T["POOL_REPLY_INTEGER"]
NIL = _T["POOL_REPLY_NIL"]
STATUS = _T["POOL_REPLY_STATUS"]
ERROR = _T["POOL_REPLY_ERROR"]
DOUBLE = _T["POOL_REPLY_DOUBLE"]
BOOL = _T["POOL_REPLY_BOOL"]
MAP = _T["POOL_REPLY_MAP"]
SET = _T["POOL_REPLY_SET"]
PUSH = _T["POOL_REPLY_PUSH"]
BIGNUM = _T["POOL_REPLY_BIGNUM"]
VERB = _T["POOL_REPLY_VERB"]


def _hashable(value):
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def convert(r: _native.PoolReply, encoding: str | None, errors: str):
    """The Python value of reply ``r``; strings are bytes, or str decoded with
    ``encoding`` when it is not None. Error replies become ReplyError instances."""
    t = r.type
    if t in (STRING, STATUS, VERB):
        data = ctypes.string_at(r.str, r.len) if r.len else b""
        return data.decode(encoding, errors) if encoding is not None else data
    if t == INTEGER:
        return r.integer
    if t == NIL:
        return None
    if t in (ARRAY, PUSH, SET, MAP):
        n = r.elements
        items = [convert(r.element[i].contents, encoding, errors) for i in range(n)]
        if t == MAP:
            return {_hashable(items[i]): items[i + 1] for i in range(0, n, 2)}
        if t == SET:
            try:
                return set(items)
            except TypeError:  # unhashable members (nested aggregates)
                return items
        return items
    if t == ERROR:
        return ReplyError(ctypes.string_at(r.str, r.len).decode("utf-8", "replace"))
    if t == DOUBLE:
        return r.dval
    if t == BOOL:
        return bool(r.integer)
    if t == BIGNUM:
        return int(ctypes.string_at(r.str, r.len))
    raise ValueError(f"unknown reply type {t}")
