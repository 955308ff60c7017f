"""The binding's hand-written tables against include/redispool.h, parsed here: a
status code, reply type, struct field or prototype change in the C API fails
these tests until the binding follows."""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

import pytest

import redispool
from redispool import _native, errors

HEADER = Path(
    os.environ.get("REDISPOOL_HEADER")
    or Path(__file__).resolve().parents[3] / "include" / "redispool.h"
)


@pytest.fixture(scope="module")
def header() -> str:
    if not HEADER.is_file():
        pytest.fail(f"{HEADER} not found (set REDISPOOL_HEADER)")
    # Comments out, so that examples in them do not count.
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", HEADER.read_text(), flags=re.S)


def defines(header: str, prefix: str) -> dict[str, int]:
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(rf"^#define ({prefix}\w*) (\d+)\s*$", header, re.M)
    }


def struct_fields(header: str, name: str) -> list[tuple[str, str]]:
    """(C type, field name) of `struct NAME { ... };` in order; arrays as `T[N]`."""
    m = re.search(rf"struct {name} \{{(.*?)\n\}};", header, re.S)
    assert m, f"struct {name} not in the header"
    fields = []
    for decl in m.group(1).split(";"):
        decl = " ".join(decl.split())
        if not decl:
            continue
        fm = re.fullmatch(r"(.+?)\s*\b(\w+)(\[\w+\])?", decl)
        assert fm, decl
        ctype, field, array = fm.group(1).strip(), fm.group(2), fm.group(3)
        fields.append((ctype + (array or ""), field))
    return fields


# C type spelling in the header -> the ctypes type the binding must use for it.
SCALARS = {
    "size_t": ctypes.c_size_t,
    "bool": ctypes.c_bool,
    "int": ctypes.c_int,
    "int32_t": ctypes.c_int32,
    "int64_t": ctypes.c_int64,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "double": ctypes.c_double,
    "pool_status_t": ctypes.c_int32,
    "const char *": ctypes.c_char_p,
    "char *": ctypes.c_void_p,  # pool_reply_t.str: binary, read with len
    "pool_dial_fn": ctypes.c_void_p,  # not set from Python
    "pool_free_fn": ctypes.c_void_p,  # not set from Python
    "void *": ctypes.c_void_p,
    "char[256]": ctypes.c_char * 256,
    "char[4]": ctypes.c_char * 4,
    "struct pool_reply **": ctypes.POINTER(ctypes.POINTER(_native.PoolReply)),
    "const char *const *": ctypes.POINTER(ctypes.c_char_p),
    "const pool_options_t *": ctypes.POINTER(_native.PoolOptions),
    "const pool_reply_t *": ctypes.POINTER(_native.PoolReply),
}


def check_struct(header, c_name, py_struct):
    expected = struct_fields(header, c_name)
    actual = py_struct._fields_
    assert [n for _, n in expected] == [n for n, _ in actual], f"{c_name} fields"
    for (ctype, name), (_, pytype) in zip(expected, actual):
        want = SCALARS.get(ctype)
        assert want is not None, f"{c_name}.{name}: no mapping for C type {ctype!r}"
        assert ctypes.sizeof(want) == ctypes.sizeof(pytype), f"{c_name}.{name}"
        if not issubclass(want, ctypes.Array):
            assert want == pytype, f"{c_name}.{name}: {ctype} must be {want}, is {pytype}"


def test_status_codes_match_header(header):
    assert defines(header, "POOL_(?:OK|ERR_)") == _native.STATUS_CODES


def test_every_error_code_has_its_exception_class(header):
    codes = {v for k, v in defines(header, "POOL_ERR_").items()}
    assert set(redispool.ERRORS_BY_CODE) == codes
    classes = list(redispool.ERRORS_BY_CODE.values())
    assert len(set(classes)) == len(classes), "one class per code"
    for code, cls in redispool.ERRORS_BY_CODE.items():
        assert issubclass(cls, redispool.RedisPoolError)
        assert cls.code == code
        err = errors.error_for(code)
        assert type(err) is cls and err.code == code and str(err), code


def test_message_kinds_match_header(header):
    assert defines(header, "POOL_MSG_") == _native.MESSAGE_KINDS


def test_reply_types_match_header(header):
    assert defines(header, "POOL_REPLY_") == _native.REPLY_TYPES


def test_buffer_sizes_match_header(header):
    for name in ("POOL_CLUSTER_ADDR_MAX", "POOL_SENTINEL_ADDR_LEN"):
        assert defines(header, name)[name] == getattr(_native, name)


@pytest.mark.parametrize(
    "c_name,py_struct",
    [
        ("pool_options", _native.PoolOptions),
        ("pool_stats", _native.PoolStats),
        ("pool_error", _native.PoolError),
        ("pool_reply", _native.PoolReply),
        ("pool_leak", _native.PoolLeak),
        ("pool_message", _native.PoolMessage),
        ("pool_cluster_options", _native.PoolClusterOptions),
        ("pool_cluster_info", _native.PoolClusterInfo),
        ("pool_sentinel_options", _native.PoolSentinelOptions),
        ("pool_sentinel_stats", _native.PoolSentinelStats),
    ],
)
def test_struct_layouts_match_header(header, c_name, py_struct):
    check_struct(header, c_name, py_struct)


def test_stats_and_options_cover_every_header_field(header):
    stats = [n for _, n in struct_fields(header, "pool_stats") if n != "struct_size"]
    assert list(redispool.Stats.__dataclass_fields__) == stats
    options = [
        n for _, n in struct_fields(header, "pool_options")
        if n not in ("struct_size", "addr", "dialer", "dialer_userdata")
    ]
    assert list(redispool.OPTION_NAMES) == options


def test_struct_sizes_match_the_c_compiler():
    """REDISPOOL_C_SIZES (from tests/c/layout.c, set by tests/python_binding.rs)."""
    sizes = os.environ.get("REDISPOOL_C_SIZES")
    if not sizes:
        pytest.skip("REDISPOOL_C_SIZES not set (cargo test --test python_binding sets it)")
    c = dict(item.split("=") for item in sizes.split())
    py = {
        "pool_options_t": _native.PoolOptions,
        "pool_stats_t": _native.PoolStats,
        "pool_error_t": _native.PoolError,
        "pool_reply_t": _native.PoolReply,
        "pool_leak_t": _native.PoolLeak,
    }
    for name, struct in py.items():
        assert int(c[name]) == ctypes.sizeof(struct), name


ARG_TYPES = dict(SCALARS)
ARG_TYPES.update(
    {
        "void": None,
        "const char *const *": ctypes.POINTER(ctypes.c_char_p),
        "const size_t *": ctypes.POINTER(ctypes.c_size_t),
        "size_t *": ctypes.POINTER(ctypes.c_size_t),
        "int *": ctypes.POINTER(ctypes.c_int),
        "pool_error_t *": ctypes.POINTER(_native.PoolError),
        "pool_options_t *": ctypes.POINTER(_native.PoolOptions),
        "const pool_options_t *": ctypes.POINTER(_native.PoolOptions),
        "pool_stats_t *": ctypes.POINTER(_native.PoolStats),
        "pool_leak_t *": ctypes.POINTER(_native.PoolLeak),
        "pool_reply_t *": ctypes.POINTER(_native.PoolReply),
        "pool_reply_t **": ctypes.POINTER(ctypes.POINTER(_native.PoolReply)),
        "const int *": ctypes.POINTER(ctypes.c_int),
        "const char *const *const *": ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p)),
        "const size_t *const *": ctypes.POINTER(ctypes.POINTER(ctypes.c_size_t)),
        "pool_message_t *": ctypes.POINTER(_native.PoolMessage),
        "pool_message_t **": ctypes.POINTER(ctypes.POINTER(_native.PoolMessage)),
    }
)
ARG_TYPES.update(
    {
        "pool_cluster_options_t *": ctypes.POINTER(_native.PoolClusterOptions),
        "const pool_cluster_options_t *": ctypes.POINTER(_native.PoolClusterOptions),
        "pool_cluster_info_t *": ctypes.POINTER(_native.PoolClusterInfo),
        "pool_sentinel_options_t *": ctypes.POINTER(_native.PoolSentinelOptions),
        "const pool_sentinel_options_t *": ctypes.POINTER(_native.PoolSentinelOptions),
        "pool_sentinel_stats_t *": ctypes.POINTER(_native.PoolSentinelStats),
    }
)
for handle in ("pool_t", "pool_conn_t", "pool_cancel_t", "pool_cluster_t", "pool_subscriber_t"):
    ARG_TYPES[f"{handle} *"] = ctypes.c_void_p
    ARG_TYPES[f"const {handle} *"] = ctypes.c_void_p
    ARG_TYPES[f"{handle} **"] = ctypes.POINTER(ctypes.c_void_p)


def spelling(ctype: str) -> str:
    """One spelling per type: `T *`, `T **`, `const char *const *`."""
    return re.sub(r"\s*\*", " *", ctype).replace("* *", "**")


def prototypes(header: str) -> dict[str, tuple[str, list[str]]]:
    protos = {}
    for m in re.finditer(r"^([A-Za-z_][\w ]*?[\s*]+)(pool_\w+)\(([^)]*)\);", header, re.M):
        ret, name, args = " ".join(m.group(1).split()), m.group(2), " ".join(m.group(3).split())
        arg_types = []
        if args != "void":
            for arg in args.split(","):
                am = re.fullmatch(r"(.+?)\s*(\w+)", arg.strip())
                arg_types.append(spelling(am.group(1)))
        protos[name] = (spelling(ret), arg_types)
    return protos


def test_prototypes_match_header(header):
    protos = prototypes(header)
    assert "pool_conn_command" in protos and "pool_get_ex" in protos
    for name, (restype, argtypes) in _native.PROTOTYPES.items():
        assert name in protos, f"{name} is not in the header"
        c_ret, c_args = protos[name]
        assert ARG_TYPES[c_ret] == restype, f"{name} returns {c_ret}"
        assert len(c_args) == len(argtypes), f"{name}: {c_args}"
        for i, (c_arg, py_arg) in enumerate(zip(c_args, argtypes)):
            assert c_arg in ARG_TYPES, f"{name} arg {i}: no mapping for {c_arg!r}"
            want = ARG_TYPES[c_arg]
            assert want == py_arg, f"{name} arg {i}: {c_arg} must be {want}"


def test_sentinel_stats_cover_every_header_field(header):
    fields = [n for _, n in struct_fields(header, "pool_sentinel_stats") if n != "struct_size"]
    assert list(redispool.SentinelStats.__dataclass_fields__) == fields


def test_no_unsized_options_init_is_bound():
    """The binding fills its option structs through the sized initialisers, as the
    header's pool_*_options_init macros do."""
    for name in _native.PROTOTYPES:
        assert not name.endswith("_options_init"), name


@pytest.mark.parametrize(
    "init_name,py_struct,first_version_ends",
    [
        ("pool_options_init_size", _native.PoolOptions, "write_timeout_ms"),
        ("pool_sentinel_options_init_size", _native.PoolSentinelOptions, "poll_interval_ms"),
    ],
)
def test_options_init_writes_only_the_bindings_struct(init_name, py_struct, first_version_ends):
    """A binding built against an older header has a shorter struct: the library must
    write only the binding's sizeof (the unsized pool_*_options_init would write the
    whole of today's struct). Here the binding's struct is cut to the C API's first
    version of it, inside a larger buffer of 0xAA bytes: init_struct must fill it
    (struct_size = the short size) and leave every byte after it alone."""
    names = [n for n, _ in py_struct._fields_]
    fields = py_struct._fields_[: names.index(first_version_ends) + 1]
    short_type = type("Short", (ctypes.Structure,), {"_fields_": fields})
    size = ctypes.sizeof(short_type)
    full = ctypes.sizeof(py_struct)
    assert size < full
    buf = (ctypes.c_ubyte * (full + 64))(*([0xAA] * (full + 64)))
    short = short_type.from_buffer(buf)
    _native.init_struct(getattr(_native.lib, init_name), short)
    assert short.struct_size == size
    assert bytes(buf[size:]) == b"\xaa" * (full + 64 - size)
    whole = py_struct()
    _native.init_struct(getattr(_native.lib, init_name), whole)
    assert whole.struct_size == full


def test_cluster_options_init_refuses_a_short_struct():
    """pool_cluster_options_t has had one version: a shorter one is refused, nothing written."""
    fields = _native.PoolClusterOptions._fields_[:2]
    short_type = type("Short", (ctypes.Structure,), {"_fields_": fields})
    buf = (ctypes.c_ubyte * ctypes.sizeof(_native.PoolClusterOptions))()
    for i in range(len(buf)):
        buf[i] = 0xAA
    init = _native.lib.pool_cluster_options_init_size
    with pytest.raises(OSError):
        _native.init_struct(init, short_type.from_buffer(buf))
    assert bytes(buf) == b"\xaa" * len(buf)
    whole = _native.PoolClusterOptions()
    _native.init_struct(_native.lib.pool_cluster_options_init_size, whole)
    assert whole.struct_size == ctypes.sizeof(whole)
