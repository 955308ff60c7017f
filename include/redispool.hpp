/*
 * redispool.hpp: a thin, header-only C++17 wrapper over redispool.h.
 *
 * Everything the pool does happens in the C library; this file only ties its
 * handles to C++ object lifetimes (RAII) and turns its status codes into C++
 * errors. Link exactly as for C (`pkg-config --cflags --libs redispool`, or
 * -lredispool); build with -std=c++17 or later.
 *
 *   redispool::Pool pool("redis://127.0.0.1:6379/0?pool_size=8&pool_timeout=1s");
 *   {
 *       redispool::Conn conn = pool.get();              // waits up to pool_timeout
 *       conn.command({"SET", "greeting", "hello"});
 *       redispool::Reply r = conn.command({"GET", "greeting"});
 *       std::cout << r.str() << "\n";                  // "hello"
 *   }                                                   // conn goes back to the pool
 *
 * The classes, all in namespace redispool:
 *   Pool       owns a pool_t (pool_free on destruction); get, try_get, stats, close.
 *              Pool::sentinel(master, sentinels) follows a Sentinel-managed master
 *              (sentinel_master_addr, sentinel_stats).
 *   Cluster    owns a pool_cluster_t (pool_cluster_free on destruction); get(key),
 *              get_slot, get_node, slot_node, stats, info, nodes, refresh, close.
 *   Conn       a checked-out connection; gives it back to its pool (or cluster) on
 *              scope exit. command, pipelines, wait_replicas (WAIT).
 *   Reply      owns a pool_reply_t (pool_reply_free on destruction); ReplyView reads
 *              one node of its tree without owning it.
 *   Cancel     owns a pool_cancel_t; fire() it from any thread to stop a get.
 *   Error      a failure: the pool_status_t code and the library's message.
 *   Result<T>  a value or an Error, for code that does not use exceptions.
 * Pool, Cluster, Conn, Reply and Cancel own their C handle and are move-only: a moved-from
 * object is empty and its destructor does nothing.
 *
 * Errors: exceptions, or not, as you choose. Exceptions are idiomatic C++ and keep
 * the happy path short, but many code bases build with -fno-exceptions (games,
 * embedded, some style guides). So every operation that can fail has two forms, each
 * a single call into the C library:
 *   - a throwing one (`Pool(url)`, `pool.get()`, `conn.command(...)`, `pool.close()`),
 *     which throws redispool::Error: a std::runtime_error whose what() is the
 *     library's message and whose code() is the POOL_ERR_* status;
 *   - a non-throwing one (`Pool::open(url)`, `pool.get_nothrow()`,
 *     `conn.command_nothrow(...)`, `pool.close_nothrow()`; and `pool.try_get()`, which
 *     never waits), returning Result<T>: check ok(), then use value() or error().
 * Code built without exceptions (-fno-exceptions) gets only the non-throwing forms:
 * the throwing ones are compiled out, so using one is a compile error rather than a
 * surprise abort. REDISPOOL_EXCEPTIONS (1 or 0) is detected from the compiler; define
 * it to 0 yourself to leave the throwing forms out of a build that has exceptions
 * (use one setting in every file of a program, as for any inline code).
 * Result<T>::value() on an error throws the Error (with exceptions) or calls
 * std::abort() (without): check ok() first. Result is [[nodiscard]]: ignoring one is a
 * compiler warning. The non-throwing forms are noexcept: as everywhere under
 * -fno-exceptions, running out of memory (for an error message) terminates.
 *
 * Threads: as in C. One Pool may be used from many threads at once (by reference;
 * moving or destroying it must not race with other uses). A Conn is used by one
 * thread at a time, and may be handed to another thread. Cancel::fire is for any thread.
 */

#ifndef REDISPOOL_HPP
#define REDISPOOL_HPP

#include "redispool.h"

#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <iterator>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#ifndef REDISPOOL_EXCEPTIONS
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define REDISPOOL_EXCEPTIONS 1
#else
#define REDISPOOL_EXCEPTIONS 0
#endif
#endif

namespace redispool {

/// A pool_get timeout meaning "the pool's own pool_timeout_ms" (the default).
inline constexpr std::chrono::milliseconds use_pool_timeout{-1};
/// A pool_get timeout meaning "do not wait for a turn" (a dial is still awaited).
inline constexpr std::chrono::milliseconds no_wait{0};

/// A failed call: code() is the POOL_ERR_* status, what() the library's message
/// (from pool_error_t when the C function fills one, else pool_status_str(code)).
/// Thrown by the throwing forms; carried by Result<T> in the non-throwing ones.
class Error : public std::runtime_error {
public:
    Error(pool_status_t code, const std::string &message)
        : std::runtime_error(message), code_(code) {}

    /// The POOL_ERR_* code (POOL_OK only for Result<T>::error() of a success).
    pool_status_t code() const noexcept { return code_; }

    /// The static description of code(), e.g. "connection pool timeout".
    const char *code_str() const noexcept { return pool_status_str(code_); }

private:
    pool_status_t code_;
};

namespace detail {

inline pool_error_t empty_error() noexcept {
    pool_error_t err;
    err.code = POOL_OK;
    err.message[0] = '\0';
    return err;
}

/// The Error for `status`, with the detail of `err` when the call filled it.
inline Error make_error(pool_status_t status, const pool_error_t &err) {
    if (err.code == status && err.message[0] != '\0') {
        return Error(status, std::string(err.message));
    }
    return Error(status, pool_status_str(status));
}

inline Error make_error(pool_status_t status) { return Error(status, pool_status_str(status)); }

/// What Result<T>::error() returns for a success.
inline const Error &success() {
    static const Error ok(POOL_OK, pool_status_str(POOL_OK));
    return ok;
}

[[noreturn]] inline void fail(const Error &error) {
#if REDISPOOL_EXCEPTIONS
    throw error;
#else
    (void)error;
    std::abort();
#endif
}

} // namespace detail

/// The outcome of a non-throwing call: a T, or an Error. Like std::expected (C++23):
///
///   redispool::Result<redispool::Conn> r = pool.get_nothrow();
///   if (!r.ok()) { log(r.error().code(), r.error().what()); return; }
///   redispool::Conn conn = std::move(r).value();
///
/// value(), operator* and operator-> on an error throw the Error, or abort without
/// exceptions: check ok() (or the bool conversion) first.
template <class T> class [[nodiscard]] Result {
public:
    Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)
        : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) noexcept : v_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T &value() & { return *checked(); }
    const T &value() const & { return *checked(); }
    T &&value() && { return std::move(*checked()); }
    T &operator*() & { return value(); }
    const T &operator*() const & { return value(); }
    T &&operator*() && { return std::move(*checked()); }
    T *operator->() { return checked(); }
    const T *operator->() const { return checked(); }

    /// The error; for a success, an Error with code POOL_OK.
    const Error &error() const noexcept {
        const Error *e = std::get_if<1>(&v_);
        return e != nullptr ? *e : detail::success();
    }
    /// POOL_OK, or the error's code.
    pool_status_t code() const noexcept { return ok() ? POOL_OK : error().code(); }

private:
    T *checked() {
        if (T *v = std::get_if<0>(&v_)) return v;
        detail::fail(error());
    }
    const T *checked() const {
        if (const T *v = std::get_if<0>(&v_)) return v;
        detail::fail(error());
    }

    std::variant<T, Error> v_;
};

/// A success without a value, or an Error.
template <> class [[nodiscard]] Result<void> {
public:
    Result() noexcept : error_() {}
    Result(Error error) noexcept : error_(std::move(error)) {}

    bool ok() const noexcept { return !error_.has_value(); }
    explicit operator bool() const noexcept { return ok(); }
    /// Nothing on success; throws (or aborts) on an error.
    void value() const {
        if (error_) detail::fail(*error_);
    }
    const Error &error() const noexcept { return error_ ? *error_ : detail::success(); }
    pool_status_t code() const noexcept { return ok() ? POOL_OK : error_->code(); }

private:
    std::optional<Error> error_;
};

/// A read-only view of one node of a reply tree (the root or any child). It does not
/// own anything: it is valid as long as the Reply it came from. Accessors that do not
/// apply to the node's type return the C struct's neutral values ("" / 0), and an
/// empty view (an index out of range) reports type() 0.
class ReplyView {
public:
    ReplyView() noexcept = default;
    explicit ReplyView(const pool_reply_t *reply) noexcept : r_(reply) {}

    /// False for an empty view.
    explicit operator bool() const noexcept { return r_ != nullptr; }
    /// POOL_REPLY_* (0 for an empty view).
    int type() const noexcept { return r_ != nullptr ? r_->type : 0; }

    bool is_string() const noexcept { return type() == POOL_REPLY_STRING; }
    bool is_status() const noexcept { return type() == POOL_REPLY_STATUS; }
    /// A Redis error reply (WRONGTYPE ...): the command itself worked.
    bool is_error() const noexcept { return type() == POOL_REPLY_ERROR; }
    bool is_integer() const noexcept { return type() == POOL_REPLY_INTEGER; }
    bool is_nil() const noexcept { return type() == POOL_REPLY_NIL; }
    bool is_array() const noexcept { return type() == POOL_REPLY_ARRAY; }

    /// The text of a STRING, STATUS, ERROR, DOUBLE, BIGNUM or VERB reply (binary
    /// safe); empty for other types.
    std::string_view str() const noexcept {
        if (r_ == nullptr || r_->str == nullptr) return {};
        return std::string_view(r_->str, r_->len);
    }
    /// str(), copied.
    std::string string() const { return std::string(str()); }
    /// INTEGER; BOOL as 0 or 1; 0 otherwise.
    int64_t integer() const noexcept { return r_ != nullptr ? r_->integer : 0; }
    /// DOUBLE; 0 otherwise.
    double dval() const noexcept { return r_ != nullptr ? r_->dval : 0.0; }
    /// The children of ARRAY, SET, PUSH; of MAP, keys and values alternating.
    size_t size() const noexcept { return r_ != nullptr ? r_->elements : 0; }
    /// Child `i`, or an empty view when `i >= size()`.
    ReplyView operator[](size_t i) const noexcept {
        if (r_ == nullptr || i >= r_->elements || r_->element == nullptr) return ReplyView();
        return ReplyView(r_->element[i]);
    }
    /// The C struct (NULL for an empty view).
    const pool_reply_t *native() const noexcept { return r_; }

protected:
    const pool_reply_t *r_ = nullptr;
};

/// One command's reply, owned: freed with pool_reply_free when destroyed. All the
/// ReplyView accessors read its root; r[i] reads a child, valid while r lives.
class Reply : public ReplyView {
public:
    Reply() noexcept = default;
    /// Takes ownership of a reply from pool_conn_command.
    explicit Reply(pool_reply_t *reply) noexcept : ReplyView(reply) {}
    ~Reply() { pool_reply_free(owned()); }

    Reply(Reply &&other) noexcept : ReplyView(std::exchange(other.r_, nullptr)) {}
    Reply &operator=(Reply &&other) noexcept {
        if (this != &other) {
            pool_reply_free(owned());
            r_ = std::exchange(other.r_, nullptr);
        }
        return *this;
    }
    Reply(const Reply &) = delete;
    Reply &operator=(const Reply &) = delete;

    /// Gives up ownership: the caller frees the result with pool_reply_free.
    pool_reply_t *release() noexcept { return const_cast<pool_reply_t *>(std::exchange(r_, nullptr)); }

private:
    pool_reply_t *owned() const noexcept { return const_cast<pool_reply_t *>(r_); }
};

/// A cancellation token (pool_cancel_t) for Pool::get: fire() it from any thread and
/// every get waiting with it returns POOL_ERR_CANCELED, as do later ones (a token
/// stays fired: use a new one per request). It must outlive the gets using it.
class Cancel {
public:
#if REDISPOOL_EXCEPTIONS
    /// A new, unfired token. Throws std::bad_alloc if memory ran out.
    Cancel() : c_(pool_cancel_new()) {
        if (c_ == nullptr) throw std::bad_alloc();
    }
#else
    /// A new, unfired token; empty (native() NULL, gets not cancelable) if memory ran out.
    Cancel() noexcept : c_(pool_cancel_new()) {}
#endif
    ~Cancel() { pool_cancel_free(c_); }

    Cancel(Cancel &&other) noexcept : c_(std::exchange(other.c_, nullptr)) {}
    Cancel &operator=(Cancel &&other) noexcept {
        if (this != &other) {
            pool_cancel_free(c_);
            c_ = std::exchange(other.c_, nullptr);
        }
        return *this;
    }
    Cancel(const Cancel &) = delete;
    Cancel &operator=(const Cancel &) = delete;

    /// Fires the token. Any thread; never blocks for long.
    void fire() const noexcept { pool_cancel_fire(c_); }
    const pool_cancel_t *native() const noexcept { return c_; }

private:
    pool_cancel_t *c_ = nullptr;
};

/// A checked-out connection (a guard over pool_conn_t). When it goes out of scope it
/// gives the conn back to its pool: pool_put, or pool_remove when it is bad. It is bad
/// after mark_bad(reason), or after a command through it failed with POOL_ERR_IO,
/// POOL_ERR_PROTOCOL or POOL_ERR_BAD_CONN (the conn is then out of step with the server).
///
/// A conn from a Cluster goes back the same way through the cluster
/// (pool_cluster_put / pool_cluster_remove): the node pool it came from.
///
/// Moving it moves the duty to give the conn back; the moved-from guard is empty and
/// does nothing. A Conn may outlive its Pool (or Cluster) object: giving it back then
/// closes it.
class Conn {
public:
    /// An empty guard.
    Conn() noexcept = default;
    /// Adopts `conn`, checked out from `pool` with the C API.
    Conn(pool_t *pool, pool_conn_t *conn) noexcept : pool_(pool), conn_(conn) {}
    /// Adopts `conn`, checked out from `cluster` with pool_cluster_get*.
    Conn(pool_cluster_t *cluster, pool_conn_t *conn) noexcept : cluster_(cluster), conn_(conn) {}
    ~Conn() { reset(); }

    Conn(Conn &&other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)),
          cluster_(std::exchange(other.cluster_, nullptr)),
          conn_(std::exchange(other.conn_, nullptr)), bad_(std::exchange(other.bad_, false)),
          reason_(std::move(other.reason_)) {}
    Conn &operator=(Conn &&other) noexcept {
        if (this != &other) {
            reset();
            pool_ = std::exchange(other.pool_, nullptr);
            cluster_ = std::exchange(other.cluster_, nullptr);
            conn_ = std::exchange(other.conn_, nullptr);
            bad_ = std::exchange(other.bad_, false);
            reason_ = std::move(other.reason_);
        }
        return *this;
    }
    Conn(const Conn &) = delete;
    Conn &operator=(const Conn &) = delete;

    /// False for an empty (default-constructed, moved-from, released or reset) guard.
    explicit operator bool() const noexcept { return conn_ != nullptr; }
    /// The socket, for readiness polling and your own I/O on a plain conn (do not close
    /// it); -1 when empty. On a TLS conn use read() and write(): the socket carries TLS
    /// records.
    int fd() const noexcept { return pool_conn_fd(conn_); }

    /// pool_conn_read: up to `len` bytes of what the server sent (decrypted on a TLS
    /// conn), 0 at EOF. `timeout` 0 = do not wait (POOL_ERR_WOULD_BLOCK when nothing came:
    /// poll fd() for reading, after reading until then), negative = as long as it takes.
    Result<size_t> read(void *buf, size_t len, std::chrono::milliseconds timeout) noexcept {
        size_t n = 0;
        pool_error_t err = detail::empty_error();
        int64_t ms = timeout.count() < 0 ? -1 : static_cast<int64_t>(timeout.count());
        pool_status_t rc = pool_conn_read(conn_, buf, len, ms, &n, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return n;
    }
    /// pool_conn_write: the bytes of `data` taken (all of them unless the time ran out,
    /// or `timeout` is 0: only what the socket takes now; POOL_ERR_WOULD_BLOCK when none:
    /// poll fd() for writing). Negative = as long as it takes. On a TLS conn a
    /// non-blocking write may leave records behind: write_pending().
    Result<size_t> write(std::string_view data, std::chrono::milliseconds timeout) noexcept {
        size_t n = 0;
        pool_error_t err = detail::empty_error();
        int64_t ms = timeout.count() < 0 ? -1 : static_cast<int64_t>(timeout.count());
        pool_status_t rc = pool_conn_write(conn_, data.data(), data.size(), ms, &n, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return n;
    }
    /// pool_conn_write_pending: TLS records a non-blocking write() left behind (send them
    /// with write("", 0ms) once fd() is writable).
    bool write_pending() const noexcept { return pool_conn_write_pending(conn_); }
    /// Unique per pool, never reused; 0 when empty.
    uint64_t id() const noexcept { return pool_conn_id(conn_); }
    /// For a conn of a Cluster (or of a cluster's node pool): the node ("host:port") it
    /// is connected to. Empty for any other conn, or when empty.
    std::string node() const {
        char buf[POOL_CLUSTER_ADDR_MAX];
        if (pool_cluster_conn_node(conn_, buf, sizeof buf) != POOL_OK) return std::string();
        return std::string(buf);
    }

#if REDISPOOL_EXCEPTIONS
    /// `WAIT numreplicas timeout` (pool_conn_wait_replicas): blocks until the writes sent
    /// on this conn so far reached at least `numreplicas` replicas, or `timeout` (at least
    /// 1 ms) passed; returns how many replicas have them. Throws Error: POOL_ERR_TIMEOUT
    /// when fewer did in time (the writes stay applied on the master; a failover may lose
    /// them), POOL_ERR_IO when the server refuses WAIT, POOL_ERR_INVALID_ARG.
    int wait_replicas(int numreplicas, std::chrono::milliseconds timeout) {
        return wait_replicas_nothrow(numreplicas, timeout).value();
    }
#endif
    /// wait_replicas() without exceptions. On POOL_ERR_TIMEOUT the Error's code says so;
    /// the count acknowledged is then in `*acked` when not NULL.
    Result<int> wait_replicas_nothrow(int numreplicas, std::chrono::milliseconds timeout,
                                      int *acked = nullptr) noexcept {
        int n = 0;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_conn_wait_replicas(conn_, numreplicas,
                                                   static_cast<int64_t>(timeout.count()), &n, &err);
        if (acked != nullptr) *acked = n;
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return n;
    }

    /// Makes the guard remove the conn (pool_remove with `reason`) instead of putting it.
    void mark_bad(std::string reason = {}) {
        bad_ = true;
        reason_ = std::move(reason);
    }
    /// Whether the conn will be removed rather than put back.
    bool bad() const noexcept { return bad_; }

#if REDISPOOL_EXCEPTIONS
    /// Sends one command and returns its reply, e.g. command({"SET", key, value}).
    /// Arguments are binary safe. A Redis error reply (WRONGTYPE ...) is a Reply with
    /// is_error(), not an exception. Throws Error on failure (POOL_ERR_IO,
    /// POOL_ERR_PROTOCOL and POOL_ERR_BAD_CONN also mark the conn bad).
    Reply command(std::initializer_list<std::string_view> args) {
        return command_nothrow(args).value();
    }
    /// As above, for any container of things convertible to std::string_view
    /// (std::vector<std::string>, ...).
    template <class Args> Reply command(const Args &args) {
        return command_nothrow(args).value();
    }
    /// command() with this call's own read timeout (pool_conn_command_ex), in place of
    /// the pool's: for blocking commands, e.g. command({"BLPOP", key, "5"},
    /// std::chrono::seconds(6)) on a pool whose read timeout is 1 s. 0 = none,
    /// negative = the pool's.
    Reply command(std::initializer_list<std::string_view> args,
                  std::chrono::milliseconds read_timeout) {
        return command_nothrow(args, read_timeout).value();
    }
#endif

    /// command(args, read_timeout) without exceptions.
    Result<Reply> command_nothrow(std::initializer_list<std::string_view> args,
                                  std::chrono::milliseconds read_timeout) noexcept {
        return run(args.begin(), args.size(), static_cast<int64_t>(read_timeout.count()));
    }

    /// command() without exceptions.
    Result<Reply> command_nothrow(std::initializer_list<std::string_view> args) noexcept {
        return run(args.begin(), args.size());
    }
    template <class Args> Result<Reply> command_nothrow(const Args &args) noexcept {
        std::vector<std::string_view> views(std::begin(args), std::end(args));
        return run(views.data(), views.size());
    }

    /// Gives the conn back now, as the destructor would; the guard is then empty.
    void reset() noexcept {
        if (conn_ == nullptr) return;
        const char *reason = reason_.empty() ? nullptr : reason_.c_str();
        if (cluster_ != nullptr) {
            if (bad_) {
                pool_cluster_remove(cluster_, conn_, reason);
            } else {
                pool_cluster_put(cluster_, conn_);
            }
        } else if (bad_) {
            pool_remove(pool_, conn_, reason);
        } else {
            pool_put(pool_, conn_);
        }
        pool_ = nullptr;
        cluster_ = nullptr;
        conn_ = nullptr;
        bad_ = false;
        reason_.clear();
    }

    /// Gives up the duty to give the conn back: the caller must pool_put or pool_remove
    /// it on pool(), or pool_cluster_put / pool_cluster_remove it on cluster() (read
    /// them first: the guard is empty afterwards).
    pool_conn_t *release() noexcept {
        pool_ = nullptr;
        cluster_ = nullptr;
        bad_ = false;
        reason_.clear();
        return std::exchange(conn_, nullptr);
    }

    /// The C handles (NULL when empty). pool() is NULL for a conn of a Cluster, and
    /// cluster() for any other.
    pool_conn_t *native() const noexcept { return conn_; }
    pool_t *pool() const noexcept { return pool_; }
    pool_cluster_t *cluster() const noexcept { return cluster_; }

private:
    Result<Reply> run(const std::string_view *args, size_t n, int64_t timeout_ms = -1) noexcept {
        if (n == 0 || n > static_cast<size_t>(INT_MAX)) {
            return Error(POOL_ERR_INVALID_ARG, "redispool: a command needs 1 to INT_MAX arguments");
        }
        // Small commands (the usual case) need no allocation for the argument arrays.
        constexpr size_t inline_args = 16;
        const char *ptr_buf[inline_args];
        size_t len_buf[inline_args];
        std::vector<const char *> ptr_vec;
        std::vector<size_t> len_vec;
        const char **ptrs = ptr_buf;
        size_t *lens = len_buf;
        if (n > inline_args) {
            ptr_vec.resize(n);
            len_vec.resize(n);
            ptrs = ptr_vec.data();
            lens = len_vec.data();
        }
        for (size_t i = 0; i < n; i++) {
            // A non-NULL pointer even for an empty argument.
            ptrs[i] = args[i].data() != nullptr ? args[i].data() : "";
            lens[i] = args[i].size();
        }
        pool_reply_t *reply = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc =
            pool_conn_command_ex(conn_, static_cast<int>(n), ptrs, lens, timeout_ms, &reply,
                                 &err);
        if (rc != POOL_OK) {
            Error error = detail::make_error(rc, err);
            if (rc == POOL_ERR_IO || rc == POOL_ERR_PROTOCOL || rc == POOL_ERR_BAD_CONN) {
                mark_bad(error.what());
            }
            return error;
        }
        return Reply(reply);
    }

    pool_t *pool_ = nullptr;
    pool_cluster_t *cluster_ = nullptr;
    pool_conn_t *conn_ = nullptr;
    bool bad_ = false;
    std::string reason_{};
};

/// A connection pool (pool_t), freed with pool_free when destroyed (which closes it).
/// Create it from a go-redis URL or from pool_options_t; borrow conns with get().
class Pool {
public:
    /// An empty pool object (every call on it fails with POOL_ERR_INVALID_ARG).
    Pool() noexcept = default;
    /// Adopts a pool made with the C API (pool_new, pool_sticky_new, ...).
    explicit Pool(pool_t *pool) noexcept : p_(pool) {}

#if REDISPOOL_EXCEPTIONS
    /// From a go-redis URL, e.g. "redis://:secret@127.0.0.1:6379/0?pool_size=8".
    /// Throws Error (POOL_ERR_INVALID_ARG naming the bad part) when it is invalid.
    explicit Pool(const std::string &url) : Pool(open(url).value()) {}
    /// From options: start with Pool::default_options() and change fields.
    explicit Pool(const pool_options_t &options) : Pool(open(options).value()) {}
#endif

    /// Pool(url) without exceptions.
    static Result<Pool> open(const std::string &url) noexcept {
        pool_t *p = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_new_url(url.c_str(), &p, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Pool(p);
    }
    /// Pool(options) without exceptions.
    static Result<Pool> open(const pool_options_t &options) noexcept {
        pool_t *p = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_new(&options, &p, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Pool(p);
    }
    /// pool_options_t with every default filled in (pool_options_init).
    static pool_options_t default_options() noexcept {
        pool_options_t options;
        pool_options_init(&options);
        return options;
    }

#if REDISPOOL_EXCEPTIONS
    /// A pool for the master the sentinels at `sentinel_addrs` ("host:port") report for
    /// `master_name`, following failovers (pool_sentinel_new). `node` configures the
    /// master conns as for Pool(options) (NULL: the defaults); its addr must be NULL.
    /// Contacts no sentinel (the first get does). Throws Error (POOL_ERR_INVALID_ARG).
    static Pool sentinel(const std::string &master_name,
                         const std::vector<std::string> &sentinel_addrs,
                         const pool_options_t *node = nullptr) {
        return open_sentinel(master_name, sentinel_addrs, node).value();
    }
    /// As above, from pool_sentinel_options_t (start with default_sentinel_options()).
    static Pool sentinel(const pool_sentinel_options_t &options,
                         const pool_options_t *node = nullptr) {
        return open_sentinel(options, node).value();
    }
#endif

    /// Pool::sentinel(...) without exceptions.
    static Result<Pool> open_sentinel(const std::string &master_name,
                                      const std::vector<std::string> &sentinel_addrs,
                                      const pool_options_t *node = nullptr) noexcept {
        std::vector<const char *> addrs;
        addrs.reserve(sentinel_addrs.size());
        for (const std::string &a : sentinel_addrs) addrs.push_back(a.c_str());
        pool_sentinel_options_t options = default_sentinel_options();
        options.master_name = master_name.c_str();
        options.sentinel_addrs = addrs.data();
        options.sentinel_addrs_len = addrs.size();
        return open_sentinel(options, node);
    }
    static Result<Pool> open_sentinel(const pool_sentinel_options_t &options,
                                      const pool_options_t *node = nullptr) noexcept {
        pool_t *p = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_sentinel_new(&options, node, &p, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Pool(p);
    }
    /// pool_sentinel_options_t with every default filled in (pool_sentinel_options_init).
    static pool_sentinel_options_t default_sentinel_options() noexcept {
        pool_sentinel_options_t options;
        pool_sentinel_options_init(&options);
        return options;
    }

    ~Pool() { pool_free(p_); }
    Pool(Pool &&other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    Pool &operator=(Pool &&other) noexcept {
        if (this != &other) {
            pool_free(p_);
            p_ = std::exchange(other.p_, nullptr);
        }
        return *this;
    }
    Pool(const Pool &) = delete;
    Pool &operator=(const Pool &) = delete;

    /// False for an empty (default-constructed or moved-from) object.
    explicit operator bool() const noexcept { return p_ != nullptr; }

#if REDISPOOL_EXCEPTIONS
    /// Borrows a conn: an idle one, or a newly dialed one. Waits at most `timeout`
    /// (use_pool_timeout: the pool's pool_timeout; no_wait: no wait for a turn), and
    /// stops early with POOL_ERR_CANCELED when `cancel` fires. Throws Error:
    /// POOL_ERR_TIMEOUT, POOL_ERR_DIAL, POOL_ERR_CLOSED, POOL_ERR_CANCELED, ...
    Conn get(std::chrono::milliseconds timeout = use_pool_timeout,
             const Cancel *cancel = nullptr) {
        return get_nothrow(timeout, cancel).value();
    }
    /// Closes the pool: idle conns close, waiters and later gets fail with
    /// POOL_ERR_CLOSED; conns still out close when given back. Throws Error
    /// (POOL_ERR_CLOSED when already closed).
    void close() { close_nothrow().value(); }
#endif

    /// get() without exceptions.
    Result<Conn> get_nothrow(std::chrono::milliseconds timeout = use_pool_timeout,
                             const Cancel *cancel = nullptr) noexcept {
        pool_conn_t *c = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_get_ex(p_, static_cast<int64_t>(timeout.count()),
                                       cancel != nullptr ? cancel->native() : nullptr, &c, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Conn(p_, c);
    }
    /// Never waits, dials or resolves: an idle conn, or an error with code
    /// POOL_ERR_WOULD_BLOCK (then wait for notify_fd() to become readable and retry).
    Result<Conn> try_get() noexcept {
        pool_conn_t *c = nullptr;
        pool_status_t rc = pool_try_get(p_, &c);
        if (rc != POOL_OK) return detail::make_error(rc);
        return Conn(p_, c);
    }
    /// close() without exceptions.
    Result<void> close_nothrow() noexcept {
        pool_status_t rc = pool_close(p_);
        if (rc != POOL_OK) return detail::make_error(rc);
        return {};
    }

    /// A statistics snapshot (all zero for an empty object).
    pool_stats_t stats() const noexcept {
        pool_stats_t s{};
        s.struct_size = sizeof s;
        if (pool_stats(p_, &s) != POOL_OK) {
            s = pool_stats_t{};
            s.struct_size = sizeof s;
        }
        return s;
    }
    /// Conns the pool owns, idle or checked out (-1 when empty).
    int len() const noexcept { return pool_len(p_); }
    /// Idle conns (-1 when empty).
    int idle_len() const noexcept { return pool_idle_len(p_); }
    /// The level-triggered eventfd for event loops (see pool_notify_fd); owned by the
    /// pool. -1 on failure or when empty.
    int notify_fd() const noexcept { return pool_notify_fd(p_); }
#if REDISPOOL_EXCEPTIONS
    /// For a sentinel pool: the master it dials now ("ip:port"). May ask the sentinels
    /// (at most dial_timeout_ms) when none is known yet. Throws Error: POOL_ERR_DIAL
    /// when no sentinel answers, POOL_ERR_INVALID_ARG for a pool that is not a sentinel one.
    std::string sentinel_master_addr() const { return sentinel_master_addr_nothrow().value(); }
#endif
    /// sentinel_master_addr() without exceptions.
    Result<std::string> sentinel_master_addr_nothrow() const noexcept {
        char buf[POOL_SENTINEL_ADDR_LEN];
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_sentinel_master_addr(p_, buf, sizeof buf, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return std::string(buf);
    }

#if REDISPOOL_EXCEPTIONS
    /// For a sentinel pool: its failover figures (pool_sentinel_stats). Throws Error
    /// (POOL_ERR_INVALID_ARG for a pool that is not a sentinel one, or an empty object).
    pool_sentinel_stats_t sentinel_stats() const { return sentinel_stats_nothrow().value(); }
#endif
    /// sentinel_stats() without exceptions.
    Result<pool_sentinel_stats_t> sentinel_stats_nothrow() const noexcept {
        pool_sentinel_stats_t s{};
        s.struct_size = sizeof s;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_sentinel_stats(p_, &s, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return s;
    }

    /// The C handle, for the functions this wrapper does not cover (NULL when empty).
    pool_t *native() const noexcept { return p_; }

private:
    pool_t *p_ = nullptr;
};

/// Commands queued on a Conn and sent in one write (pool_conn_pipeline): add() them, then
/// exec() reads one Reply per command, in order (a Redis error reply is a Reply with
/// is_error() in its place; the ones after it are read as usual). The arguments are
/// copied when added. An I/O or protocol failure marks the conn bad (it is removed when
/// its guard gives it back); the replies that arrived before it are lost with the
/// exception (exec_nothrow returns the error). The Conn must outlive the Pipeline.
///   redispool::Pipeline p(conn);
///   p.add({"SET", "a", "1"}).add({"INCR", "a"});
///   std::vector<redispool::Reply> r = p.exec();   // r[1].integer() == 2
class Pipeline {
public:
    explicit Pipeline(Conn &conn) noexcept : conn_(&conn) {}

    /// Queues one command (binary safe). Returns *this for chaining.
    Pipeline &add(std::initializer_list<std::string_view> args) {
        cmds_.emplace_back(args.begin(), args.end());
        return *this;
    }
    /// As above, for any container of things convertible to std::string_view.
    template <class Args> Pipeline &add(const Args &args) {
        cmds_.emplace_back(std::begin(args), std::end(args));
        return *this;
    }
    /// Commands queued and not yet sent.
    size_t size() const noexcept { return cmds_.size(); }
    /// Forgets the queued commands.
    void clear() noexcept { cmds_.clear(); }

#if REDISPOOL_EXCEPTIONS
    /// Sends the queued commands and returns their replies; the queue is then empty.
    /// `read_timeout` bounds the reading of all the replies (negative: the pool's; 0:
    /// none). Throws Error: POOL_ERR_INVALID_ARG for an empty pipeline, or the failure.
    std::vector<Reply> exec(std::chrono::milliseconds read_timeout = std::chrono::milliseconds(-1)) {
        return exec_nothrow(read_timeout).value();
    }
#endif

    /// exec() without exceptions.
    Result<std::vector<Reply>> exec_nothrow(
        std::chrono::milliseconds read_timeout = std::chrono::milliseconds(-1)) noexcept {
        const size_t n = cmds_.size();
        std::vector<int> argcs(n);
        std::vector<std::vector<const char *>> ptrs(n);
        std::vector<std::vector<size_t>> lens(n);
        std::vector<const char *const *> argvs(n);
        std::vector<const size_t *> argvlens(n);
        for (size_t i = 0; i < n; i++) {
            for (const std::string &a : cmds_[i]) {
                ptrs[i].push_back(a.c_str());
                lens[i].push_back(a.size());
            }
            argcs[i] = static_cast<int>(cmds_[i].size());
            argvs[i] = ptrs[i].data();
            argvlens[i] = lens[i].data();
        }
        std::vector<pool_reply_t *> raw(n, nullptr);
        size_t got = 0;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_conn_pipeline(conn_->native(), n, argcs.data(), argvs.data(),
                                              argvlens.data(),
                                              static_cast<int64_t>(read_timeout.count()),
                                              raw.data(), &got, &err);
        std::vector<Reply> replies;
        replies.reserve(n);
        for (size_t i = 0; i < n; i++) replies.emplace_back(raw[i]);
        cmds_.clear();
        if (rc != POOL_OK) {
            Error error = detail::make_error(rc, err);
            if (rc == POOL_ERR_IO || rc == POOL_ERR_PROTOCOL || rc == POOL_ERR_BAD_CONN) {
                conn_->mark_bad(error.what());
            }
            return error;
        }
        return replies;
    }

protected:
    Conn *conn_;
    std::vector<std::vector<std::string>> cmds_;
};

/// A MULTI ... EXEC transaction sent as one pipeline (go-redis's TxPipeline): add() the
/// commands, then exec() returns EXEC's reply: an array of the commands' replies,
/// is_nil() when a key WATCHed before (conn.command({"WATCH", key})) changed (aborted: not
/// an error), or an EXECABORT error reply when a queued command was refused.
class Transaction : private Pipeline {
public:
    explicit Transaction(Conn &conn) : Pipeline(conn) { Pipeline::add({"MULTI"}); }
    Transaction &add(std::initializer_list<std::string_view> args) {
        Pipeline::add(args);
        return *this;
    }
    template <class Args> Transaction &add(const Args &args) {
        Pipeline::add(args);
        return *this;
    }
    /// Commands queued (MULTI not counted).
    size_t size() const noexcept { return cmds_.size() - 1; }

#if REDISPOOL_EXCEPTIONS
    /// Sends MULTI, the commands and EXEC in one write; EXEC's reply. Throws Error on
    /// failure. The transaction is then empty (MULTI queued again).
    Reply exec(std::chrono::milliseconds read_timeout = std::chrono::milliseconds(-1)) {
        return exec_nothrow(read_timeout).value();
    }
#endif
    /// exec() without exceptions.
    Result<Reply> exec_nothrow(
        std::chrono::milliseconds read_timeout = std::chrono::milliseconds(-1)) noexcept {
        Pipeline::add({"EXEC"});
        Result<std::vector<Reply>> r = Pipeline::exec_nothrow(read_timeout);
        Pipeline::add({"MULTI"});
        if (!r.ok()) return r.error();
        return std::move(r->back());
    }
};

/// One message or event from a Subscriber (pool_message_t), owned: freed when destroyed.
class Message {
public:
    explicit Message(pool_message_t *m) noexcept : m_(m) {}
    ~Message() { pool_message_free(m_); }
    Message(Message &&other) noexcept : m_(std::exchange(other.m_, nullptr)) {}
    Message &operator=(Message &&other) noexcept {
        if (this != &other) {
            pool_message_free(m_);
            m_ = std::exchange(other.m_, nullptr);
        }
        return *this;
    }
    Message(const Message &) = delete;
    Message &operator=(const Message &) = delete;

    /// POOL_MSG_*.
    int kind() const noexcept { return m_ != nullptr ? m_->kind : 0; }
    std::string_view channel() const noexcept { return view(m_ ? m_->channel : nullptr, m_ ? m_->channel_len : 0); }
    /// POOL_MSG_PMESSAGE: the pattern that matched.
    std::string_view pattern() const noexcept { return view(m_ ? m_->pattern : nullptr, m_ ? m_->pattern_len : 0); }
    std::string_view payload() const noexcept { return view(m_ ? m_->payload : nullptr, m_ ? m_->payload_len : 0); }
    /// Subscribe kinds: subscriptions left; POOL_MSG_RESUBSCRIBED: resubscriptions so far.
    int64_t count() const noexcept { return m_ != nullptr ? m_->count : 0; }
    /// POOL_MSG_PUSH: the whole frame (valid while the Message lives).
    ReplyView reply() const noexcept { return ReplyView(m_ != nullptr ? m_->reply : nullptr); }
    const pool_message_t *native() const noexcept { return m_; }

private:
    static std::string_view view(const char *p, size_t n) noexcept {
        return p != nullptr ? std::string_view(p, n) : std::string_view();
    }
    pool_message_t *m_;
};

/// A subscriber (pool_subscriber_t) on conns of its own, freed when destroyed: see
/// pool_subscriber_new. Subscriptions survive a lost conn (a POOL_MSG_RESUBSCRIBED message
/// says so). One thread at a time.
///   redispool::Subscriber sub(pool);
///   sub.subscribe({"news"});
///   while (auto m = sub.receive(1s)) if (m->kind() == POOL_MSG_MESSAGE) use(m->payload());
class Subscriber {
public:
    /// An empty subscriber (every call fails with POOL_ERR_INVALID_ARG).
    Subscriber() noexcept = default;
    /// Adopts a subscriber made with the C API.
    explicit Subscriber(pool_subscriber_t *s) noexcept : s_(s) {}
#if REDISPOOL_EXCEPTIONS
    /// A subscriber on `pool` (pool_subscriber_new). Throws Error.
    explicit Subscriber(const Pool &pool) : Subscriber(open(pool).value()) {}
#endif
    /// Subscriber(pool) without exceptions.
    static Result<Subscriber> open(const Pool &pool) noexcept {
        pool_subscriber_t *s = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_subscriber_new(pool.native(), &s, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Subscriber(s);
    }
    /// A subscriber on a cluster (pool_cluster_subscriber_new: SSUBSCRIBE goes to the
    /// master of each channel's slot), e.g. Subscriber::open(cluster.native()).
    static Result<Subscriber> open(pool_cluster_t *cluster) noexcept {
        pool_subscriber_t *s = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_cluster_subscriber_new(cluster, &s, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Subscriber(s);
    }
    ~Subscriber() { pool_subscriber_free(s_); }
    Subscriber(Subscriber &&other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
    Subscriber &operator=(Subscriber &&other) noexcept {
        if (this != &other) {
            pool_subscriber_free(s_);
            s_ = std::exchange(other.s_, nullptr);
        }
        return *this;
    }
    Subscriber(const Subscriber &) = delete;
    Subscriber &operator=(const Subscriber &) = delete;

    using Fn = pool_status_t (*)(pool_subscriber_t *, size_t, const char *const *,
                                 const size_t *, pool_error_t *);

    /// (P|S)(UN)SUBSCRIBE without exceptions; `names` empty unsubscribes from all.
    Result<void> change_nothrow(Fn fn, std::initializer_list<std::string_view> names) noexcept {
        std::vector<const char *> ptrs;
        std::vector<size_t> lens;
        for (std::string_view n : names) {
            ptrs.push_back(n.data() != nullptr ? n.data() : "");
            lens.push_back(n.size());
        }
        pool_error_t err = detail::empty_error();
        pool_status_t rc = fn(s_, ptrs.size(), ptrs.empty() ? nullptr : ptrs.data(),
                              lens.empty() ? nullptr : lens.data(), &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Result<void>();
    }
#if REDISPOOL_EXCEPTIONS
    void subscribe(std::initializer_list<std::string_view> c) { change_nothrow(pool_subscriber_subscribe, c).value(); }
    void psubscribe(std::initializer_list<std::string_view> p) { change_nothrow(pool_subscriber_psubscribe, p).value(); }
    void ssubscribe(std::initializer_list<std::string_view> c) { change_nothrow(pool_subscriber_ssubscribe, c).value(); }
    void unsubscribe(std::initializer_list<std::string_view> c = {}) { change_nothrow(pool_subscriber_unsubscribe, c).value(); }
    void punsubscribe(std::initializer_list<std::string_view> p = {}) { change_nothrow(pool_subscriber_punsubscribe, p).value(); }
    void sunsubscribe(std::initializer_list<std::string_view> c = {}) { change_nothrow(pool_subscriber_sunsubscribe, c).value(); }

    /// The next message or event, waiting at most `timeout` (negative: as long as it
    /// takes); std::nullopt when none came. Throws Error for any other failure (a lost
    /// conn that cannot be dialed again: POOL_ERR_DIAL; a closed pool: POOL_ERR_CLOSED).
    std::optional<Message> receive(std::chrono::milliseconds timeout) {
        return receive_nothrow(timeout).value();
    }
    /// PINGs the subscriber's conns (pool_subscriber_ping). Throws Error.
    void ping(std::chrono::milliseconds timeout) { ping_nothrow(timeout).value(); }
#endif
    /// receive() without exceptions.
    Result<std::optional<Message>> receive_nothrow(std::chrono::milliseconds timeout) noexcept {
        pool_message_t *m = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_subscriber_receive(s_, static_cast<int64_t>(timeout.count()), &m, &err);
        if (rc == POOL_ERR_TIMEOUT) return std::optional<Message>();
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return std::optional<Message>(Message(m));
    }
    /// ping() without exceptions.
    Result<void> ping_nothrow(std::chrono::milliseconds timeout) noexcept {
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_subscriber_ping(s_, static_cast<int64_t>(timeout.count()), &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Result<void>();
    }
    /// The fd for event loops (pool_subscriber_fd); -1 when empty.
    int fd() const noexcept { return pool_subscriber_fd(s_); }
    /// Lost conns replaced so far (pool_subscriber_resubscribes).
    uint64_t resubscribes() const noexcept { return pool_subscriber_resubscribes(s_); }
    pool_subscriber_t *native() const noexcept { return s_; }

private:
    pool_subscriber_t *s_ = nullptr;
};

/// A Redis Cluster (pool_cluster_t): a slot map and one pool per node, made on demand
/// with the same node options. Freed with pool_cluster_free when destroyed (which
/// closes it). get(key) borrows a Conn to the master serving the key's slot; commands
/// on it follow MOVED / ASK (max_redirects), and the Conn gives itself back to its node
/// pool on scope exit. Errors as for Pool, plus POOL_ERR_CLUSTER when no node gives a
/// slot map or a slot has no master. Thread-safe like Pool; move-only.
///
///   redispool::Cluster cluster("redis://127.0.0.1:7000?addr=127.0.0.1:7001");
///   redispool::Conn conn = cluster.get("user:42");
///   conn.command({"SET", "user:42", "Ada"});
class Cluster {
public:
    /// An empty object (every call on it fails with POOL_ERR_INVALID_ARG).
    Cluster() noexcept = default;
    /// Adopts a cluster made with the C API.
    explicit Cluster(pool_cluster_t *cluster) noexcept : c_(cluster) {}

#if REDISPOOL_EXCEPTIONS
    /// From a go-redis cluster URL: "redis://host:port?addr=host2:port2&pool_size=4"
    /// (pool_cluster_new_url). Dials nothing. Throws Error (POOL_ERR_INVALID_ARG).
    explicit Cluster(const std::string &url) : Cluster(open(url).value()) {}
    /// From options: start with Cluster::default_options() and set the seeds.
    explicit Cluster(const pool_cluster_options_t &options) : Cluster(open(options).value()) {}
    /// From seed addresses ("host:port") and node pool options (NULL: the defaults).
    static Cluster from_seeds(const std::vector<std::string> &seeds,
                              const pool_options_t *node = nullptr) {
        return open_seeds(seeds, node).value();
    }
#endif

    /// Cluster(url) without exceptions.
    static Result<Cluster> open(const std::string &url) noexcept {
        pool_cluster_t *c = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_cluster_new_url(url.c_str(), &c, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Cluster(c);
    }
    /// Cluster(options) without exceptions.
    static Result<Cluster> open(const pool_cluster_options_t &options) noexcept {
        pool_cluster_t *c = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_cluster_new(&options, &c, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Cluster(c);
    }
    /// from_seeds() without exceptions.
    static Result<Cluster> open_seeds(const std::vector<std::string> &seeds,
                                      const pool_options_t *node = nullptr) noexcept {
        std::vector<const char *> addrs;
        addrs.reserve(seeds.size());
        for (const std::string &s : seeds) addrs.push_back(s.c_str());
        pool_cluster_options_t options = default_options();
        options.seeds = addrs.data();
        options.seeds_len = addrs.size();
        options.node = node;
        return open(options);
    }
    /// pool_cluster_options_t with every default filled in (pool_cluster_options_init).
    static pool_cluster_options_t default_options() noexcept {
        pool_cluster_options_t options;
        pool_cluster_options_init(&options);
        return options;
    }
    /// The hash slot (0..16383) of `key`, or of its {hash tag}, as Redis Cluster.
    static int key_slot(std::string_view key) noexcept {
        return pool_cluster_key_slot(key.data() != nullptr ? key.data() : "", key.size());
    }

    ~Cluster() { pool_cluster_free(c_); }
    Cluster(Cluster &&other) noexcept : c_(std::exchange(other.c_, nullptr)) {}
    Cluster &operator=(Cluster &&other) noexcept {
        if (this != &other) {
            pool_cluster_free(c_);
            c_ = std::exchange(other.c_, nullptr);
        }
        return *this;
    }
    Cluster(const Cluster &) = delete;
    Cluster &operator=(const Cluster &) = delete;

    /// False for an empty (default-constructed or moved-from) object.
    explicit operator bool() const noexcept { return c_ != nullptr; }

#if REDISPOOL_EXCEPTIONS
    /// A conn to the master serving `key` (binary safe). The first get loads the slot
    /// map. `timeout`, `cancel` as Pool::get. Throws Error: those of Pool::get, and
    /// POOL_ERR_CLUSTER.
    Conn get(std::string_view key, std::chrono::milliseconds timeout = use_pool_timeout,
             const Cancel *cancel = nullptr) {
        return get_nothrow(key, timeout, cancel).value();
    }
    /// A conn to the master serving hash slot `slot` (0..16383, else
    /// POOL_ERR_INVALID_ARG). Otherwise as get(key).
    Conn get_slot(int slot, std::chrono::milliseconds timeout = use_pool_timeout,
                  const Cancel *cancel = nullptr) {
        return get_slot_nothrow(slot, timeout, cancel).value();
    }
    /// A conn to node `addr` ("host:port", master or replica); needs no slot map.
    Conn get_node(const std::string &addr, std::chrono::milliseconds timeout = use_pool_timeout,
                  const Cancel *cancel = nullptr) {
        return get_node_nothrow(addr, timeout, cancel).value();
    }
    /// Node `addr`'s pool (made on first use), e.g. for a sticky pool or its stats.
    /// The cluster owns it: close() on it fails; destroying it gives back a reference.
    Pool node_pool(const std::string &addr) { return node_pool_nothrow(addr).value(); }
    /// Reloads the slot map now, blocking at most `timeout` (use_pool_timeout: the node
    /// options' pool_timeout). Throws Error: POOL_ERR_CLUSTER when no node answered,
    /// POOL_ERR_TIMEOUT, POOL_ERR_CLOSED.
    void refresh(std::chrono::milliseconds timeout = use_pool_timeout) {
        refresh_nothrow(timeout).value();
    }
    /// Closes every node pool; later gets fail with POOL_ERR_CLOSED. Throws Error
    /// (POOL_ERR_CLOSED when already closed).
    void close() { close_nothrow().value(); }
#endif

    /// get(key) without exceptions.
    Result<Conn> get_nothrow(std::string_view key,
                             std::chrono::milliseconds timeout = use_pool_timeout,
                             const Cancel *cancel = nullptr) noexcept {
        pool_conn_t *conn = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_cluster_get(c_, key.data() != nullptr ? key.data() : "",
                                            key.size(), static_cast<int64_t>(timeout.count()),
                                            native_cancel(cancel), &conn, &err);
        return adopt(rc, conn, err);
    }
    /// get_slot() without exceptions.
    Result<Conn> get_slot_nothrow(int slot, std::chrono::milliseconds timeout = use_pool_timeout,
                                  const Cancel *cancel = nullptr) noexcept {
        pool_conn_t *conn = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc =
            pool_cluster_get_slot(c_, static_cast<int32_t>(slot),
                                  static_cast<int64_t>(timeout.count()), native_cancel(cancel),
                                  &conn, &err);
        return adopt(rc, conn, err);
    }
    /// get_node() without exceptions.
    Result<Conn> get_node_nothrow(const std::string &addr,
                                  std::chrono::milliseconds timeout = use_pool_timeout,
                                  const Cancel *cancel = nullptr) noexcept {
        pool_conn_t *conn = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc =
            pool_cluster_get_node(c_, addr.c_str(), static_cast<int64_t>(timeout.count()),
                                  native_cancel(cancel), &conn, &err);
        return adopt(rc, conn, err);
    }
#if REDISPOOL_EXCEPTIONS
    /// The master ("host:port") serving hash slot `slot` per the slot map as it is now
    /// (pool_cluster_slot_node): never loads the map, dials or waits. Throws Error:
    /// POOL_ERR_CLUSTER before a get or refresh() loaded the map (or no master serves the
    /// slot), POOL_ERR_INVALID_ARG for a slot outside 0..16383, POOL_ERR_CLOSED.
    std::string slot_node(int slot) const { return slot_node_nothrow(slot).value(); }
#endif
    /// slot_node() without exceptions.
    Result<std::string> slot_node_nothrow(int slot) const noexcept {
        char buf[POOL_CLUSTER_ADDR_MAX];
        pool_status_t rc = pool_cluster_slot_node(c_, static_cast<int32_t>(slot), buf, sizeof buf);
        if (rc != POOL_OK) return detail::make_error(rc);
        return std::string(buf);
    }
    /// node_pool() without exceptions.
    Result<Pool> node_pool_nothrow(const std::string &addr) noexcept {
        pool_t *p = nullptr;
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_cluster_node_pool(c_, addr.c_str(), &p, &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Pool(p);
    }
    /// refresh() without exceptions.
    Result<void> refresh_nothrow(std::chrono::milliseconds timeout = use_pool_timeout) noexcept {
        pool_error_t err = detail::empty_error();
        pool_status_t rc = pool_cluster_refresh(c_, static_cast<int64_t>(timeout.count()), &err);
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return {};
    }
    /// close() without exceptions.
    Result<void> close_nothrow() noexcept {
        pool_status_t rc = pool_cluster_close(c_);
        if (rc != POOL_OK) return detail::make_error(rc);
        return {};
    }

    /// Stats summed over every node pool (all zero for an empty object).
    pool_stats_t stats() const noexcept { return stats_of(nullptr); }
    /// Stats of node `addr`'s pool (all zero when it has no pool).
    pool_stats_t stats(const std::string &addr) const noexcept { return stats_of(addr.c_str()); }
    /// Cluster-wide counters (refreshes, MOVED / ASK followed) and gauges (nodes,
    /// masters, slots covered); all zero for an empty object.
    pool_cluster_info_t info() const noexcept {
        pool_cluster_info_t i{};
        i.struct_size = sizeof i;
        if (pool_cluster_info(c_, &i) != POOL_OK) {
            i = pool_cluster_info_t{};
            i.struct_size = sizeof i;
        }
        return i;
    }
    /// The nodes: masters of the slot map first, then the other nodes with a pool
    /// (empty for an empty object, or before the slot map is loaded).
    std::vector<pool_cluster_node_t> nodes() const {
        std::vector<pool_cluster_node_t> out;
        size_t count = 0;
        // The list may grow between the two calls: ask again until it fits.
        for (int attempt = 0; attempt < 8; attempt++) {
            if (pool_cluster_nodes(c_, out.data(), out.size(), &count) != POOL_OK) return {};
            if (count <= out.size()) {
                out.resize(count);
                return out;
            }
            out.resize(count);
        }
        return out;
    }
    /// The C handle, for the functions this wrapper does not cover (NULL when empty).
    pool_cluster_t *native() const noexcept { return c_; }

private:
    static const pool_cancel_t *native_cancel(const Cancel *cancel) noexcept {
        return cancel != nullptr ? cancel->native() : nullptr;
    }
    Result<Conn> adopt(pool_status_t rc, pool_conn_t *conn, const pool_error_t &err) noexcept {
        if (rc != POOL_OK) return detail::make_error(rc, err);
        return Conn(c_, conn);
    }
    pool_stats_t stats_of(const char *addr) const noexcept {
        pool_stats_t s{};
        s.struct_size = sizeof s;
        if (pool_cluster_stats(c_, addr, &s) != POOL_OK) {
            s = pool_stats_t{};
            s.struct_size = sizeof s;
        }
        return s;
    }

    pool_cluster_t *c_ = nullptr;
};

} // namespace redispool

#endif /* REDISPOOL_HPP */
