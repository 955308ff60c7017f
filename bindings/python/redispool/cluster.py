"""Cluster: a Redis Cluster (pool_cluster_t), one pool per node, MOVED/ASK followed."""

from __future__ import annotations

import dataclasses
from ctypes import byref, c_char_p, c_void_p, cast, create_string_buffer, pointer, sizeof

from . import _native
from ._native_handle import NativeHandle
from .errors import error_for
from .pool import Cancel, Conn, Stats, _init_codec, _pool_options, _timeout_ms

lib = _native.lib

ClusterInfo = dataclasses.make_dataclass(
    "ClusterInfo",
    [
        (name, int)
        for name, _ in _native.PoolClusterInfo._fields_
        if name not in ("struct_size", "reserved")
    ],
    frozen=True,
)
ClusterInfo.__module__ = __name__
ClusterInfo.__doc__ = "pool_cluster_info_t: refreshes, moved, ask, retries, nodes, masters, ..."


def key_slot(key: bytes | str) -> int:
    """The hash slot of ``key`` (0..16383; hash tags honoured), as Redis Cluster."""
    data = key.encode() if isinstance(key, str) else bytes(key)
    return lib.pool_cluster_key_slot(data, len(data))


class Cluster(NativeHandle):
    """A Redis Cluster client's pools (pool_cluster_t), safe to share between threads.

    ``Cluster(["127.0.0.1:7000", ...], pool_size=4)`` takes seed addresses and
    any pool_options_t field by name for every node pool, plus ``max_redirects``
    and ``refresh_min_interval_ms``; ``Cluster.from_url("redis://h:p?addr=h2:p2")``
    a go-redis cluster URL. ``get(key)`` gives a conn to the master serving the
    key; commands on it follow MOVED / ASK. Conns work as Pool conns (``with``,
    ``execute``, ``put``, ``remove``)."""

    _native_put = staticmethod(lib.pool_cluster_put)
    _native_remove = staticmethod(lib.pool_cluster_remove)
    _native_close = staticmethod(lib.pool_cluster_close)

    def __init__(
        self,
        seeds: list[str],
        *,
        max_redirects: int | None = None,
        refresh_min_interval_ms: int | None = None,
        decode_responses: bool = False,
        encoding: str = "utf-8",
        encoding_errors: str = "strict",
        **options,
    ):
        self._handle = None
        _init_codec(self, decode_responses, encoding, encoding_errors)
        node = _pool_options(None, options, "Cluster()")
        copts = _native.PoolClusterOptions()
        _native.init_struct(lib.pool_cluster_options_init_size, copts)
        seeds_arr = (c_char_p * len(seeds))(*(s.encode() for s in seeds))
        copts.seeds = seeds_arr
        copts.seeds_len = len(seeds)
        copts.node = pointer(node)
        if max_redirects is not None:
            copts.max_redirects = max_redirects
        if refresh_min_interval_ms is not None:
            copts.refresh_min_interval_ms = refresh_min_interval_ms
        self._open(lib.pool_cluster_new, byref(copts))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        decode_responses: bool = False,
        encoding: str = "utf-8",
        encoding_errors: str = "strict",
    ) -> Cluster:
        """A cluster from a go-redis cluster URL (pool_cluster_new_url):
        ``redis://[[user]:password@]host:port[?addr=host2:port2&...&pool_size=4]``."""
        self = cls.__new__(cls)
        self._handle = None
        _init_codec(self, decode_responses, encoding, encoding_errors)
        self._open(lib.pool_cluster_new_url, url.encode())
        return self

    def _conn(self, status: int, out: c_void_p, err) -> Conn:
        if status != _native.POOL_OK:
            raise error_for(status, err)
        return Conn(self, out.value)

    def get(self, key: bytes | str, timeout: float | None = None,
            cancel: Cancel | None = None) -> Conn:
        """A conn to the master serving ``key`` (loads the slot map first if needed).
        ``timeout``/``cancel`` as Pool.get. Raises ClusterError when no node can
        give the slot map or the slot has no master."""
        data = key.encode(self._encoding) if isinstance(key, str) else bytes(key)
        out, err = c_void_p(), _native.PoolError()
        token = cancel._handle if cancel is not None else None
        status = lib.pool_cluster_get(
            self._handle, data, len(data), _timeout_ms(timeout), token, byref(out), byref(err)
        )
        return self._conn(status, out, err)

    def get_slot(self, slot: int, timeout: float | None = None,
                 cancel: Cancel | None = None) -> Conn:
        """A conn to the master serving hash slot ``slot`` (0..16383)."""
        out, err = c_void_p(), _native.PoolError()
        token = cancel._handle if cancel is not None else None
        status = lib.pool_cluster_get_slot(
            self._handle, slot, _timeout_ms(timeout), token, byref(out), byref(err)
        )
        return self._conn(status, out, err)

    def get_node(self, addr: str, timeout: float | None = None,
                 cancel: Cancel | None = None) -> Conn:
        """A conn to node ``addr`` ("host:port"; master or replica)."""
        out, err = c_void_p(), _native.PoolError()
        token = cancel._handle if cancel is not None else None
        status = lib.pool_cluster_get_node(
            self._handle, addr.encode(), _timeout_ms(timeout), token, byref(out), byref(err)
        )
        return self._conn(status, out, err)

    @staticmethod
    def conn_node(conn: Conn) -> str:
        """The node ("host:port") a cluster conn is connected to."""
        buf = create_string_buffer(_native.POOL_CLUSTER_ADDR_MAX)
        status = lib.pool_cluster_conn_node(conn._handle, cast(buf, c_void_p), len(buf))
        if status != _native.POOL_OK:
            raise error_for(status)
        return buf.value.decode()

    def slot_node(self, slot: int) -> str:
        """The master ("host:port") serving hash slot ``slot`` per the slot map as it
        is now (pool_cluster_slot_node): never loads the map, dials or waits.
        ClusterError before a get or refresh loaded the map (or when no master
        serves the slot); InvalidArgumentError for a slot outside 0..16383."""
        buf = create_string_buffer(_native.POOL_CLUSTER_ADDR_MAX)
        status = lib.pool_cluster_slot_node(self._handle, slot, cast(buf, c_void_p), len(buf))
        if status != _native.POOL_OK:
            raise error_for(status)
        return buf.value.decode()

    def stats(self, addr: str | None = None) -> Stats:
        """Node ``addr``'s pool stats, or with None the sum over every node pool."""
        raw = _native.PoolStats()
        raw.struct_size = sizeof(raw)
        status = lib.pool_cluster_stats(
            self._handle, addr.encode() if addr else None, byref(raw)
        )
        if status != _native.POOL_OK:
            raise error_for(status)
        return Stats(**{name: getattr(raw, name) for name in Stats.__dataclass_fields__})

    def info(self) -> ClusterInfo:
        """Cluster-wide counters and gauges (pool_cluster_info)."""
        raw = _native.PoolClusterInfo()
        raw.struct_size = sizeof(raw)
        status = lib.pool_cluster_info(self._handle, byref(raw))
        if status != _native.POOL_OK:
            raise error_for(status)
        return ClusterInfo(
            **{name: getattr(raw, name) for name in ClusterInfo.__dataclass_fields__}
        )

    def __del__(self):
        # pool_cluster_free must not race with another call on the cluster: here
        # nothing else can hold this object (a conn keeps its cluster alive).
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            lib.pool_cluster_free(handle)
