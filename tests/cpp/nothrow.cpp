/*
 * nothrow.cpp - include/redispool.hpp in a program built with -fno-exceptions.
 *
 *   ./nothrow HOST:PORT
 *
 * Run by tests/install.rs (cpp_wrapper_without_exceptions). Only the Result<T>
 * forms exist in such a build; the throwing ones are compiled out, which the
 * static_asserts below check. Exits non-zero when any check failed.
 */
#include "redispool.hpp"

#include <cstdio>
#include <string>
#include <type_traits>
#include <utility>

static_assert(REDISPOOL_EXCEPTIONS == 0, "built with -fno-exceptions");

// Detects whether Pool::get() / Conn::command(...) exist in this build.
template <class P, class = void> struct has_get : std::false_type {};
template <class P>
struct has_get<P, std::void_t<decltype(std::declval<P &>().get())>> : std::true_type {};
template <class C, class = void> struct has_command : std::false_type {};
template <class C>
struct has_command<C, std::void_t<decltype(std::declval<C &>().command(
                          std::declval<std::initializer_list<std::string_view>>()))>>
    : std::true_type {};
static_assert(!has_get<redispool::Pool>::value, "the throwing get() is compiled out");
static_assert(!has_command<redispool::Conn>::value, "the throwing command() is compiled out");
static_assert(!std::is_constructible_v<redispool::Pool, std::string>,
              "the throwing constructors are compiled out");
static_assert(!std::is_constructible_v<redispool::Cluster, std::string>,
              "the throwing Cluster constructors are compiled out");
template <class C, class = void> struct has_cluster_get : std::false_type {};
template <class C>
struct has_cluster_get<C, std::void_t<decltype(std::declval<C &>().get(std::string_view()))>>
    : std::true_type {};
static_assert(!has_cluster_get<redispool::Cluster>::value,
              "the throwing Cluster::get() is compiled out");

static int failures = 0;

static void check(bool ok, const char *what, int line) {
    std::printf("%s %s (nothrow.cpp:%d)\n", ok ? "ok  " : "FAIL", what, line);
    if (!ok) failures++;
}

#define CHECK(cond) check((cond), #cond, __LINE__)

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s HOST:PORT\n", argv[0]);
        return 2;
    }
    const std::string base = std::string("redis://") + argv[1];

    auto bad = redispool::Pool::open(base + "?bogus=1");
    CHECK(!bad.ok() && bad.code() == POOL_ERR_INVALID_ARG);

    auto opened = redispool::Pool::open(base + "?pool_size=1");
    CHECK(opened.ok());
    if (!opened.ok()) {
        std::printf("cannot continue: %s\n", opened.error().what());
        return 1;
    }
    redispool::Pool pool = std::move(opened).value();
    {
        auto got = pool.get_nothrow();
        CHECK(got.ok());
        if (!got.ok()) return 1;
        redispool::Conn conn = std::move(got).value();
        auto pong = conn.command_nothrow({"PING"});
        CHECK(pong.ok() && pong->str() == "PONG");
        auto timeout = pool.get_nothrow(redispool::no_wait);
        CHECK(!timeout && timeout.code() == POOL_ERR_TIMEOUT);
        auto would_block = pool.try_get();
        CHECK(would_block.code() == POOL_ERR_WOULD_BLOCK);
        redispool::Cancel token;
        token.fire();
        auto canceled = pool.get_nothrow(redispool::use_pool_timeout, &token);
        CHECK(canceled.code() == POOL_ERR_CANCELED);
    }
    CHECK(pool.idle_len() == 1);
    redispool::Result<void> closed = pool.close_nothrow();
    CHECK(closed.ok() && closed.code() == POOL_OK);
    CHECK(pool.close_nothrow().code() == POOL_ERR_CLOSED);

    // Cluster and Sentinel: their Result forms (the real deployments are checked by
    // cluster_sentinel.cpp). The server here is no cluster: no slot map.
    pool_options_t node = redispool::Pool::default_options();
    node.dialer_retries = 1;
    auto cluster = redispool::Cluster::open_seeds({argv[1]}, &node);
    CHECK(cluster.ok());
    if (cluster.ok()) {
        auto got = cluster->get_nothrow("k", std::chrono::milliseconds(2000));
        CHECK(!got.ok() && got.code() == POOL_ERR_CLUSTER);
        CHECK(cluster->close_nothrow().ok());
    }
    CHECK(redispool::Cluster::open("no url").code() == POOL_ERR_INVALID_ARG);
    auto sentinel = redispool::Pool::open_sentinel("", {argv[1]});
    CHECK(!sentinel.ok() && sentinel.code() == POOL_ERR_INVALID_ARG);
    CHECK(pool.sentinel_master_addr_nothrow().code() == POOL_ERR_INVALID_ARG);

    if (failures != 0) {
        std::printf("%d checks failed\n", failures);
        return 1;
    }
    std::printf("all nothrow checks passed\n");
    return 0;
}
