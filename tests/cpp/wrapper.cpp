/*
 * wrapper.cpp - checks include/redispool.hpp against a real redis-server.
 *
 *   ./wrapper HOST:PORT
 *
 * Run by tests/install.rs (cpp_wrapper_against_real_redis). Prints one line per
 * check ("ok ..." or "FAIL ...") and exits non-zero when any check failed.
 */
#include "check.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using redispool::Conn;
using redispool::Error;
using redispool::Pool;
using redispool::Reply;

static bool contains(const char *haystack, const char *needle) {
    return std::strstr(haystack, needle) != nullptr;
}

static void pool_and_guard(const std::string &base) {
    section("Pool from a URL, Conn guard, scope exit puts");
    Pool pool(base + "?pool_size=2&pool_timeout=2s");
    CHECK(static_cast<bool>(pool));
    CHECK(pool.len() == 0 && pool.idle_len() == 0);
    uint64_t first_id = 0;
    {
        Conn conn = pool.get();
        CHECK(static_cast<bool>(conn));
        CHECK(conn.fd() >= 0);
        first_id = conn.id();
        CHECK(first_id != 0);
        Reply set = conn.command({"SET", "cpp:greeting", "hello from C++"});
        CHECK(set.is_status() && set.str() == "OK");
        Reply get = conn.command({"GET", "cpp:greeting"});
        CHECK(get.is_string() && get.str() == "hello from C++");
        CHECK(pool.len() == 1 && pool.idle_len() == 0);
    }
    CHECK(pool.len() == 1 && pool.idle_len() == 1);

    section("Reply accessors");
    {
        Conn conn = pool.get();
        CHECK(conn.id() == first_id);
        Reply del = conn.command({"DEL", "cpp:list", "cpp:n", "cpp:missing"});
        CHECK(del.is_integer());
        Reply incr = conn.command({"INCRBY", "cpp:n", "41"});
        CHECK(incr.is_integer() && incr.integer() == 41);
        Reply nil = conn.command({"GET", "cpp:missing"});
        CHECK(nil.is_nil() && nil.str().empty() && nil.size() == 0);
        Reply push = conn.command({"RPUSH", "cpp:list", "a", "bb", "ccc"});
        CHECK(push.integer() == 3);
        Reply range = conn.command({"LRANGE", "cpp:list", "0", "-1"});
        CHECK(range.is_array() && range.size() == 3);
        CHECK(range[0].str() == "a" && range[1].str() == "bb" && range[2].string() == "ccc");
        CHECK(!range[3] && range[3].type() == 0 && range[3].str().empty());
        // A Redis error reply is a reply, not a failure: the conn stays good.
        Reply wrong = conn.command({"INCR", "cpp:list"});
        CHECK(wrong.is_error() && wrong.str().find("WRONGTYPE") == 0);
        CHECK(!conn.bad());
        // Binary-safe arguments, and any container of strings.
        const std::string binary("a\0b", 3);
        std::vector<std::string> args{"SET", "cpp:binary", binary};
        CHECK(conn.command(args).str() == "OK");
        Reply back = conn.command({"GET", "cpp:binary"});
        CHECK(back.str().size() == 3 && back.str() == binary);
        Reply empty_arg = conn.command({"SET", "cpp:empty", ""});
        CHECK(empty_arg.str() == "OK");
        CHECK(conn.command({"STRLEN", "cpp:empty"}).integer() == 0);
        // Reply is move-only; release() hands the C struct over.
        Reply moved = std::move(range);
        CHECK(!range && moved.size() == 3);
        pool_reply_t *raw = moved.release();
        CHECK(raw != nullptr && !moved);
        pool_reply_free(raw);
    }
    CHECK(pool.idle_len() == 1);
    pool_stats_t st = pool.stats();
    CHECK(st.misses == 1 && st.hits == 1 && st.total_conns == 1 && st.idle_conns == 1);

    section("mark_bad removes instead of putting");
    {
        Conn conn = pool.get();
        conn.mark_bad("the test says so");
        CHECK(conn.bad());
    }
    pool_stats_t after = pool.stats();
    CHECK(after.removed_conns == st.removed_conns + 1);
    CHECK(pool.len() == 0 && pool.idle_len() == 0);

    section("notify_fd");
    int fd = pool.notify_fd();
    CHECK(fd >= 0 && pool.notify_fd() == fd);
}

static void failed_command_marks_bad(const std::string &base) {
    section("A failed command marks the guard bad");
    Pool pool(base + "?pool_size=1&read_timeout=200ms");
    {
        Conn conn = pool.get();
        // BLPOP blocks for 5 s on the server: the 200 ms read timeout fires first.
        auto e = thrown([&] { conn.command({"BLPOP", "cpp:never", "5"}); });
        CHECK(e.has_value() && e->code() == POOL_ERR_IO);
        CHECK(e.has_value() && std::strlen(e->what()) > 0);
        CHECK(conn.bad());
        auto again = conn.command_nothrow({"PING"});
        CHECK(!again.ok() && again.code() == POOL_ERR_BAD_CONN);
    }
    pool_stats_t st = pool.stats();
    CHECK(st.removed_conns == 1 && pool.len() == 0);
    // The pool dials a fresh conn for the next get.
    Conn fresh = pool.get();
    CHECK(fresh.command({"PING"}).str() == "PONG");

    section("A blocking command with its own read timeout keeps the conn good");
    // BLPOP 1 (s) with a 3 s read timeout on a 200 ms pool: nil, conn still good.
    Reply nil = fresh.command({"BLPOP", "cpp:never", "1"}, std::chrono::milliseconds(3000));
    CHECK(nil.is_nil() && !fresh.bad());
    auto late = fresh.command_nothrow({"BLPOP", "cpp:never", "2"}, std::chrono::milliseconds(500));
    CHECK(!late.ok() && late.code() == POOL_ERR_IO && fresh.bad());
}

static void exceptions(const std::string &base) {
    section("Exceptions carry the code and the library's message");
    auto bad_option = thrown([&] { Pool p(base + "?no_such_option=1"); });
    CHECK(bad_option.has_value() && bad_option->code() == POOL_ERR_INVALID_ARG);
    CHECK(bad_option.has_value() && contains(bad_option->what(), "no_such_option"));
    auto bad_scheme = thrown([] { Pool p(std::string("ftp://127.0.0.1:1")); });
    CHECK(bad_scheme.has_value() && bad_scheme->code() == POOL_ERR_INVALID_ARG);
    // An Error is a std::runtime_error.
    bool caught_as_std = false;
    try {
        Pool p(std::string("redis://127.0.0.1:1?pool_size=banana"));
    } catch (const std::runtime_error &e) {
        caught_as_std = contains(e.what(), "pool_size");
    }
    CHECK(caught_as_std);

    pool_options_t options = Pool::default_options();
    options.addr = nullptr;
    auto no_addr = thrown([&] { Pool p(options); });
    CHECK(no_addr.has_value() && no_addr->code() == POOL_ERR_INVALID_ARG &&
          contains(no_addr->what(), "addr"));

    Pool small(base + "?pool_size=1&pool_timeout=2s");
    Conn held = small.get();
    auto start = std::chrono::steady_clock::now();
    auto timeout = thrown([&] { Conn c = small.get(redispool::no_wait); });
    auto waited = std::chrono::steady_clock::now() - start;
    CHECK(timeout.has_value() && timeout->code() == POOL_ERR_TIMEOUT);
    CHECK(timeout.has_value() && contains(timeout->what(), "timeout"));
    CHECK(waited < 1s);

    section("Non-throwing variants: Result<T>");
    auto r = small.get_nothrow(redispool::no_wait);
    CHECK(!r.ok() && !r && r.code() == POOL_ERR_TIMEOUT);
    CHECK(r.error().code() == POOL_ERR_TIMEOUT && contains(r.error().what(), "timeout"));
    // value() of an error throws that error.
    auto from_value = thrown([&] { Conn c = std::move(r).value(); });
    CHECK(from_value.has_value() && from_value->code() == POOL_ERR_TIMEOUT);
    auto would_block = small.try_get();
    CHECK(!would_block.ok() && would_block.code() == POOL_ERR_WOULD_BLOCK);
    held.reset();
    CHECK(!held && small.idle_len() == 1);
    auto got = small.try_get();
    CHECK(got.ok() && got.code() == POOL_OK && got.error().code() == POOL_OK);
    CHECK(got.ok() && got->command({"PING"}).str() == "PONG");
    auto cmd = got->command_nothrow({"ECHO", "nothrow"});
    CHECK(cmd.ok() && cmd.value().str() == "nothrow");
    Conn taken = std::move(got).value();
    CHECK(static_cast<bool>(taken));
    taken.reset();

    auto opened = Pool::open(base + "?pool_size=1");
    CHECK(opened.ok());
    if (opened.ok()) {
        Pool p = std::move(opened).value();
        auto c = p.get_nothrow(1s);
        CHECK(c.ok() && c->command_nothrow({"PING"}).ok());
    }
    auto not_opened = Pool::open(base + "?pool_timeout=forever");
    CHECK(!not_opened.ok() && not_opened.code() == POOL_ERR_INVALID_ARG &&
          contains(not_opened.error().what(), "pool_timeout"));
    pool_options_t o = Pool::default_options();
    o.pool_size = -1;
    auto bad_options = Pool::open(o);
    CHECK(!bad_options.ok() && bad_options.code() == POOL_ERR_INVALID_ARG);

    section("close");
    CHECK(!thrown([&] { small.close(); }).has_value());
    auto twice = thrown([&] { small.close(); });
    CHECK(twice.has_value() && twice->code() == POOL_ERR_CLOSED);
    CHECK(small.close_nothrow().code() == POOL_ERR_CLOSED);
    auto closed = thrown([&] { Conn c = small.get(); });
    CHECK(closed.has_value() && closed->code() == POOL_ERR_CLOSED);
}

static void cancel(const std::string &base) {
    section("Cancel fired from another thread");
    Pool pool(base + "?pool_size=1&pool_timeout=30s");
    Conn held = pool.get();
    redispool::Cancel token;
    CHECK(token.native() != nullptr);
    std::atomic<bool> fired{false};
    auto start = std::chrono::steady_clock::now();
    std::thread firer([&] {
        std::this_thread::sleep_for(200ms);
        fired = true;
        token.fire();
    });
    auto e = thrown([&] { Conn c = pool.get(20s, &token); });
    auto waited = std::chrono::steady_clock::now() - start;
    firer.join();
    CHECK(e.has_value() && e->code() == POOL_ERR_CANCELED);
    CHECK(fired.load());
    CHECK(waited >= 150ms && waited < 10s);
    // A fired token stays fired.
    auto later = pool.get_nothrow(redispool::use_pool_timeout, &token);
    CHECK(later.code() == POOL_ERR_CANCELED);
    // Nothing was lost: the held conn goes back and is handed out again.
    uint64_t id = held.id();
    held.reset();
    Conn again = pool.get(1s);
    CHECK(again.id() == id);
    redispool::Cancel moved = std::move(token);
    CHECK(token.native() == nullptr && moved.native() != nullptr);
    token.fire(); // empty: ignored
}

static void move_semantics(const std::string &base) {
    section("Move semantics");
    Pool pool(base + "?pool_size=3");
    uint64_t id = 0;
    {
        Conn a = pool.get();
        id = a.id();
        Conn b = std::move(a);
        CHECK(!a && a.id() == 0 && a.fd() == -1 && a.native() == nullptr);
        CHECK(b && b.id() == id);
        {
            Conn inner = std::move(b);
            b = std::move(inner);
        } // inner is moved-from: its destructor does nothing
        CHECK(b.id() == id && pool.len() == 1 && pool.idle_len() == 0);
        a.reset(); // empty: nothing
        CHECK(pool.idle_len() == 0);
        CHECK(b.command({"PING"}).str() == "PONG");
        // Move-assigning over a guard gives its own conn back first.
        Conn c = pool.get();
        CHECK(c.id() != id && pool.len() == 2 && pool.idle_len() == 0);
        c = std::move(b);
        CHECK(c.id() == id && !b && pool.idle_len() == 1);
        // A bad guard stays bad when moved (d takes the idle conn c gave back).
        Conn d = pool.get();
        d.mark_bad("moved while bad");
        Conn e = std::move(d);
        CHECK(e.bad() && !d.bad());
    }
    pool_stats_t st = pool.stats();
    CHECK(pool.len() == 1 && pool.idle_len() == 1 && st.removed_conns == 1);

    // release(): the caller gives the conn back with the C API.
    Conn r = pool.get();
    pool_t *owner = r.pool();
    pool_conn_t *raw = r.release();
    CHECK(!r && raw != nullptr && owner == pool.native());
    CHECK(pool_put(owner, raw) == POOL_OK);
    CHECK(pool.idle_len() == 1);
    // Adopting a conn from the C API.
    pool_conn_t *c_conn = nullptr;
    CHECK(pool_get(pool.native(), &c_conn, nullptr) == POOL_OK);
    {
        Conn adopted(pool.native(), c_conn);
        CHECK(adopted.id() == pool_conn_id(c_conn));
    }
    CHECK(pool.idle_len() == 1);

    Pool moved = std::move(pool);
    CHECK(!pool && pool.native() == nullptr && pool.len() == -1 && pool.idle_len() == -1);
    CHECK(moved.len() == 1);
    auto from_empty = pool.get_nothrow();
    CHECK(from_empty.code() == POOL_ERR_INVALID_ARG);
    CHECK(pool.stats().total_conns == 0);
    pool = std::move(moved);
    CHECK(pool.len() == 1 && !moved);

    // A Conn may outlive its Pool object: giving it back then closes it.
    Conn survivor;
    {
        Pool tmp(base);
        survivor = tmp.get();
        CHECK(survivor.command({"PING"}).str() == "PONG");
    }
    CHECK(static_cast<bool>(survivor));
    survivor.reset();
    CHECK(!survivor);
}

static void from_options(const std::string &addr) {
    section("Pool from pool_options_t");
    pool_options_t o = Pool::default_options();
    o.addr = addr.c_str();
    o.pool_size = 2;
    o.client_name = "redispool-cpp";
    Pool pool(o);
    Conn conn = pool.get();
    Reply name = conn.command({"CLIENT", "GETNAME"});
    CHECK(name.str() == "redispool-cpp");
}

static void conversations(const std::string &base) {
    section("Pipeline: replies in order, an error reply in its place");
    Pool pool(base + "?pool_size=2");
    {
        Conn conn = pool.get();
        redispool::Pipeline p(conn);
        p.add({"SET", "cpp:pipe", "1"}).add({"INCR", "cpp:pipe"}).add({"LPUSH", "cpp:pipe", "x"});
        p.add(std::vector<std::string>{"GET", "cpp:pipe"});
        CHECK(p.size() == 4);
        std::vector<Reply> r = p.exec();
        CHECK(r.size() == 4 && p.size() == 0);
        CHECK(r[0].is_status() && r[1].integer() == 2);
        CHECK(r[2].is_error() && r[3].str() == "2");
        auto empty = p.exec_nothrow();
        CHECK(!empty.ok() && empty.code() == POOL_ERR_INVALID_ARG && !conn.bad());
    }
    section("Transaction: EXEC's array, and nil when a WATCHed key changed");
    {
        Conn conn = pool.get();
        redispool::Transaction tx(conn);
        tx.add({"INCR", "cpp:tx"}).add({"INCR", "cpp:tx"});
        CHECK(tx.size() == 2);
        Reply exec = tx.exec();
        CHECK(exec.is_array() && exec.size() == 2 && exec[1].integer() == 2);
        conn.command({"WATCH", "cpp:tx"});
        {
            Conn other = pool.get();
            other.command({"SET", "cpp:tx", "changed"});
        }
        tx.add({"INCR", "cpp:tx"});
        Reply aborted = tx.exec();
        CHECK(aborted.is_nil() && !conn.bad());
    }
    section("Subscriber: messages, a pattern, a kill resubscribes");
    {
        redispool::Subscriber sub(pool);
        CHECK(sub.fd() >= 0);
        sub.subscribe({"cpp:news"});
        sub.psubscribe({"cpp:sport.*"});
        auto first = sub.receive(5s);
        CHECK(first.has_value() && first->kind() == POOL_MSG_SUBSCRIBE &&
              first->channel() == "cpp:news" && first->count() == 1);
        auto second = sub.receive(5s);
        CHECK(second.has_value() && second->kind() == POOL_MSG_PSUBSCRIBE);
        {
            Conn c = pool.get();
            CHECK(c.command({"PUBLISH", "cpp:news", "hello"}).integer() == 1);
            CHECK(c.command({"PUBLISH", "cpp:sport.ski", "fast"}).integer() == 1);
        }
        auto m = sub.receive(5s);
        CHECK(m.has_value() && m->kind() == POOL_MSG_MESSAGE && m->payload() == "hello");
        auto pm = sub.receive(5s);
        CHECK(pm.has_value() && pm->kind() == POOL_MSG_PMESSAGE && pm->pattern() == "cpp:sport.*" &&
              pm->channel() == "cpp:sport.ski" && pm->payload() == "fast");
        CHECK(!sub.receive(0ms).has_value());
        sub.ping(5s);
        {
            Conn c = pool.get();
            CHECK(c.command({"CLIENT", "KILL", "TYPE", "pubsub"}).integer() == 1);
        }
        auto gap = sub.receive(5s);
        CHECK(gap.has_value() && gap->kind() == POOL_MSG_RESUBSCRIBED && sub.resubscribes() == 1);
        sub.unsubscribe();
        sub.punsubscribe();
        int confirmations = 0;
        while (auto x = sub.receive(1s)) {
            confirmations++;
            if (x->kind() == POOL_MSG_PUNSUBSCRIBE) break;
        }
        CHECK(confirmations == 4); /* two resubscribed, two unsubscribed */
        redispool::Subscriber moved = std::move(sub);
        CHECK(sub.fd() == -1 && moved.fd() >= 0);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s HOST:PORT\n", argv[0]);
        return 2;
    }
    const std::string addr = argv[1];
    const std::string base = "redis://" + addr;
    return run_checks([&] {
        pool_and_guard(base);
        failed_command_marks_bad(base);
        exceptions(base);
        cancel(base);
        move_semantics(base);
        from_options(addr);
        conversations(base);
    });
}
