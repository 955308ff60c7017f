/*
 * tls.cpp - the C++ wrapper (include/redispool.hpp) over TLS: Pool(url) with a
 * rediss:// URL, Pool(options) with the tls_* fields, Error with POOL_ERR_TLS, a
 * Subscriber on a TLS pool.
 *
 *   ./tls TLS_ADDR CERT_DIR
 *
 * TLS_ADDR is the TLS port of a redis-server whose certificate is signed by
 * CERT_DIR/ca.pem. Run by tests/cpp_tls.rs. Prints one line per check ("ok ..." or
 * "FAIL ...") and exits non-zero when any check failed.
 */
#include "check.hpp"

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

using redispool::Error;
using redispool::Pool;

static bool round_trip(Pool &pool) {
    auto conn = pool.get(); /* given back when it goes out of scope */
    conn.command({"SET", "cpp:tls", "over tls"});
    return conn.command({"GET", "cpp:tls"}).str() == "over tls";
}

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s TLS_ADDR CERT_DIR\n", argv[0]);
        return 2;
    }
    const std::string addr = argv[1];
    const std::string dir = argv[2];
    const std::string ca = dir + "/ca.pem";
    const std::string other_ca = dir + "/other-ca.pem";
    try {
        Pool url_pool("rediss://" + addr + "/?tls_ca_file=" + ca);
        CHECK(round_trip(url_pool));

        pool_options_t o = Pool::default_options();
        o.addr = addr.c_str();
        o.tls = true;
        o.tls_ca_file = ca.c_str();
        Pool opt_pool(o);
        CHECK(round_trip(opt_pool));

        /* Raw I/O through the TLS session: write(), read(). */
        {
            auto conn = opt_pool.get();
            const std::string ping = "*1\r\n$4\r\nPING\r\n";
            auto w = conn.write(ping, std::chrono::milliseconds(5000));
            CHECK(w.ok() && *w == ping.size());
            CHECK(!conn.write_pending());
            char buf[16];
            auto r = conn.read(buf, sizeof buf, std::chrono::milliseconds(5000));
            CHECK(r.ok() && *r == 7 && std::string(buf, 7) == "+PONG\r\n");
        }

        /* A subscriber on the TLS pool: a message of many records, ping, and a new TLS
         * session after CLIENT KILL that carries the channel again. */
        {
            redispool::Subscriber sub(opt_pool);
            sub.subscribe({"cpp:tls:news"});
            const std::chrono::milliseconds wait(10000);
            auto m = sub.receive(wait);
            CHECK(m && m->kind() == POOL_MSG_SUBSCRIBE);
            std::string big;
            for (int i = 0; i < 12500; i++)
                big += "0123456789abcdef"; /* 200 kB: 13 TLS records */
            {
                auto conn = opt_pool.get();
                conn.command({"PUBLISH", "cpp:tls:news", big});
                conn.command({"PUBLISH", "cpp:tls:news", "small"});
            }
            m = sub.receive(wait);
            CHECK(m && m->kind() == POOL_MSG_MESSAGE && m->payload() == big);
            m = sub.receive(wait);
            CHECK(m && m->kind() == POOL_MSG_MESSAGE && m->payload() == "small");
            sub.ping(wait);
            CHECK(opt_pool.get().command({"CLIENT", "KILL", "TYPE", "pubsub"}).integer() == 1);
            m = sub.receive(wait);
            CHECK(m && m->kind() == POOL_MSG_RESUBSCRIBED && m->count() == 1);
            m = sub.receive(wait);
            CHECK(m && m->kind() == POOL_MSG_SUBSCRIBE);
            opt_pool.get().command({"PUBLISH", "cpp:tls:news", "again"});
            m = sub.receive(wait);
            CHECK(m && m->kind() == POOL_MSG_MESSAGE && m->payload() == "again");
        }

        o.tls_ca_file = other_ca.c_str();
        o.dialer_retries = 1;
        Pool bad_ca(o);
        std::optional<Error> err;
        try {
            bad_ca.get();
        } catch (const Error &e) {
            err = e;
        }
        CHECK(err.has_value() && err->code() == POOL_ERR_TLS);
        CHECK(err.has_value() && std::string(err->what()).find("unknown issuer") != std::string::npos);
    } catch (const Error &e) {
        std::printf("FAIL threw %s: %s\n", e.code_str(), e.what());
        failures++;
    }
    std::printf("%d of %d checks passed\n", checks - failures, checks);
    return failures == 0 ? 0 : 1;
}
