"""What Pool and Cluster share over their native handle: making it, giving conns
back, closing, ``with``."""

from __future__ import annotations

from ctypes import byref, c_void_p

from . import _native
from .errors import error_for


class NativeHandle:
    """A mixin over a native handle (``self._handle``): a subclass names its native
    put, remove and close (``_native_put``, ``_native_remove``, ``_native_close``,
    as staticmethods), e.g. pool_put, pool_remove and pool_close."""

    def _open(self, new, *args) -> None:
        """Sets ``self._handle`` from the native constructor ``new`` (given ``args``,
        then the out and error pointers); raises its error."""
        out = c_void_p()
        err = _native.PoolError()
        status = new(*args, byref(out), byref(err))
        if status != _native.POOL_OK:
            raise error_for(status, err)
        self._handle = out.value

    def put(self, conn) -> None:
        """Gives ``conn`` back for reuse (to its node's pool for a cluster); a conn
        an I/O or protocol error made bad is closed instead."""
        conn._release(self, None, False)

    def remove(self, conn, reason: str | None = None) -> None:
        """Closes ``conn`` and frees its turn (in its node's pool for a cluster)."""
        conn._release(self, reason, True)

    def _give_back(self, handle: int, reason: bytes | None, remove: bool) -> int:
        if remove:
            return self._native_remove(self._handle, handle, reason)
        return self._native_put(self._handle, handle)

    def close(self) -> None:
        """Closes idle conns (of every node pool for a cluster) and wakes every
        waiter with ClosedError; later gets raise ClosedError. Conns still out are
        closed when given back. Idempotent."""
        status = self._native_close(self._handle)
        if status not in (_native.POOL_OK, _native.STATUS_CODES["POOL_ERR_CLOSED"]):
            raise error_for(status)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
