/*
 * cluster_sentinel.cpp - checks redispool::Cluster and Pool::sentinel of
 * include/redispool.hpp against a real Redis Cluster and a real Sentinel deployment.
 *
 *   ./cluster_sentinel SEED,SEED,... SENTINEL,SENTINEL,... MASTER_NAME MASTER_ADDR
 *
 * SEEDs are the cluster's masters ("host:port", at least 3, all the masters); the
 * SENTINELs watch MASTER_NAME, whose master is at MASTER_ADDR. Run by
 * tests/cpp_cluster_sentinel.rs, which starts both. Prints one line per check
 * ("ok ..." or "FAIL ...") and exits non-zero when any check failed.
 */
#include "check.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using redispool::Cluster;
using redispool::Conn;
using redispool::Error;
using redispool::Pool;
using redispool::Reply;

static std::vector<std::string> split(const std::string &list) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= list.size()) {
        size_t comma = list.find(',', start);
        if (comma == std::string::npos) comma = list.size();
        if (comma > start) out.push_back(list.substr(start, comma - start));
        start = comma + 1;
    }
    return out;
}

static bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

static const int KEYS = 200;

static std::string key_of(int i) { return "cpp:cluster:" + std::to_string(i); }

static void routing(const std::vector<std::string> &seeds) {
    section("Cluster from a URL: keys go to the master of their slot");
    std::string url = "redis://" + seeds[0];
    for (size_t i = 1; i < seeds.size(); i++) url += (i == 1 ? "?" : "&") + ("addr=" + seeds[i]);
    url += "&pool_size=4&pool_timeout=5s";
    Cluster cluster(url);
    CHECK(static_cast<bool>(cluster));

    // CLUSTER KEYSLOT on the node agrees with Cluster::key_slot, and every key lands on
    // one of the masters.
    std::set<std::string> nodes_hit;
    bool slots_agree = true;
    bool sets_ok = true;
    for (int i = 0; i < KEYS; i++) {
        const std::string key = key_of(i);
        Conn conn = cluster.get(key);
        nodes_hit.insert(conn.node());
        Reply slot = conn.command({"CLUSTER", "KEYSLOT", key});
        if (!slot.is_integer() || slot.integer() != Cluster::key_slot(key)) slots_agree = false;
        Reply set = conn.command({"SET", key, "v" + std::to_string(i)});
        if (!set.is_status() || set.str() != "OK") sets_ok = false;
    }
    CHECK(slots_agree);
    CHECK(sets_ok);
    CHECK(nodes_hit.size() == 3);
    CHECK(Cluster::key_slot("{user1000}.following") == Cluster::key_slot("{user1000}.followers"));
    CHECK(Cluster::key_slot("foo") == 12182);

    pool_cluster_info_t info = cluster.info();
    CHECK(info.masters == 3 && info.slots_covered == 16384 && info.refreshes >= 1);
    CHECK(info.moved == 0);

    std::vector<pool_cluster_node_t> nodes = cluster.nodes();
    int masters = 0;
    int slots = 0;
    for (const pool_cluster_node_t &n : nodes) {
        if (n.master != 0) {
            masters++;
            slots += n.slots;
        }
    }
    CHECK(masters == 3 && slots == 16384);
    CHECK(nodes.size() >= 3 && nodes_hit.count(nodes[0].addr) == 1);

    section("Cluster subscriber: shard channels on every master");
    {
        auto made = redispool::Subscriber::open(cluster.native());
        CHECK(made.ok());
        redispool::Subscriber sub = std::move(made).value();
        // One shard channel per master (the keys of the routing check above reached all 3).
        std::vector<std::string> chans;
        std::set<std::string> owners;
        for (int i = 0; i < KEYS && owners.size() < 3; i++) {
            Conn c = cluster.get(key_of(i));
            if (owners.insert(c.node()).second) chans.push_back(key_of(i));
        }
        CHECK(chans.size() == 3);
        for (const std::string &ch : chans) sub.ssubscribe({ch});
        int confirmed = 0;
        for (int i = 0; i < 3; i++) {
            auto m = sub.receive(std::chrono::seconds(5));
            if (m && m->kind() == POOL_MSG_SSUBSCRIBE) confirmed++;
        }
        CHECK(confirmed == 3);
        for (const std::string &ch : chans) {
            Conn c = cluster.get(ch);
            c.command({"SPUBLISH", ch, "to " + ch});
        }
        int shard_messages = 0;
        for (int i = 0; i < 3; i++) {
            auto m = sub.receive(std::chrono::seconds(5));
            if (m && m->kind() == POOL_MSG_SMESSAGE && m->payload() == "to " + std::string(m->channel()))
                shard_messages++;
        }
        CHECK(shard_messages == 3);
    }

    section("Cluster without redirects: every key is on the node get(key) chose");
    pool_options_t node = Pool::default_options();
    node.pool_size = 2;
    node.pool_timeout_ms = 5000;
    pool_cluster_options_t o = Cluster::default_options();
    std::vector<const char *> seed_ptrs;
    for (const std::string &s : seeds) seed_ptrs.push_back(s.c_str());
    o.seeds = seed_ptrs.data();
    o.seeds_len = seed_ptrs.size();
    o.node = &node;
    o.max_redirects = 0;
    Cluster strict(o);
    bool all_found = true;
    for (int i = 0; i < KEYS; i++) {
        Conn conn = strict.get(key_of(i));
        Reply get = conn.command({"GET", key_of(i)});
        if (!get.is_string() || get.str() != "v" + std::to_string(i)) {
            std::printf("     (%s on %s: %s)\n", key_of(i).c_str(), conn.node().c_str(),
                        get.string().c_str());
            all_found = false;
        }
    }
    CHECK(all_found);
    CHECK(strict.info().moved == 0);

    section("MOVED: a command sent to the wrong node is followed");
    const std::string key = key_of(7);
    std::string owner;
    {
        Conn conn = cluster.get_slot(Cluster::key_slot(key));
        owner = conn.node();
        Conn by_key = cluster.get(key);
        CHECK(by_key.node() == owner);
        // Both are out: the owner's pool has two conns in use.
        CHECK(cluster.stats(owner).in_use_conns == 2);
    }
    std::string other;
    for (const pool_cluster_node_t &n : nodes) {
        if (n.master != 0 && owner != n.addr) {
            other = n.addr;
            break;
        }
    }
    CHECK(!other.empty());
    {
        Conn wrong = strict.get_node(other);
        Reply r = wrong.command({"GET", key});
        CHECK(r.is_error() && starts_with(r.str(), "MOVED"));
    }
    uint64_t moved_before = cluster.info().moved;
    {
        Conn wrong = cluster.get_node(other);
        CHECK(wrong.node() == other);
        Reply r = wrong.command({"GET", key});
        CHECK(r.is_string() && r.str() == "v7");
    }
    CHECK(cluster.info().moved == moved_before + 1);

    section("Cluster::slot_node names the slot's master without a get");
    CHECK(cluster.slot_node(Cluster::key_slot(key)) == owner);
    CHECK(strict.slot_node(Cluster::key_slot(key)) == owner);
    {
        std::optional<Error> bad = thrown([&] { (void)cluster.slot_node(16384); });
        CHECK(bad.has_value() && bad->code() == POOL_ERR_INVALID_ARG);
        // A cluster that never loaded its map: POOL_ERR_CLUSTER, and still nothing dialed.
        Cluster unloaded = Cluster::from_seeds({seeds[0]}, &node);
        redispool::Result<std::string> none = unloaded.slot_node_nothrow(0);
        CHECK(!none.ok() && none.code() == POOL_ERR_CLUSTER);
        CHECK(unloaded.stats().total_conns == 0);
    }

    section("Cluster stats, node pools, bad conns");
    pool_stats_t st = cluster.stats();
    CHECK(st.hits + st.misses >= static_cast<uint64_t>(KEYS));
    CHECK(st.total_conns >= 3 && st.in_use_conns == 0);
    CHECK(cluster.stats(owner).total_conns >= 1);
    CHECK(cluster.stats("127.0.0.1:1").total_conns == 0);
    {
        Conn conn = cluster.get(key);
        conn.mark_bad("cpp test");
    }
    CHECK(cluster.stats().removed_conns == st.removed_conns + 1);
    {
        Pool node_pool = cluster.node_pool(owner);
        CHECK(static_cast<bool>(node_pool));
        Conn conn = node_pool.get();
        CHECK(conn.node() == owner && conn.pool() != nullptr && conn.cluster() == nullptr);
        CHECK(conn.command({"GET", key}).str() == "v7");
        std::optional<Error> e = thrown([&] { node_pool.close(); });
        CHECK(e.has_value() && e->code() == POOL_ERR_INVALID_ARG);
    }

    section("Cluster errors are redispool::Error with their code");
    std::optional<Error> e = thrown([&] { (void)cluster.get_slot(16384); });
    CHECK(e.has_value() && e->code() == POOL_ERR_INVALID_ARG);
    e = thrown([] { Cluster bad("not a url"); });
    CHECK(e.has_value() && e->code() == POOL_ERR_INVALID_ARG);
    CHECK(!Cluster::open("redis://127.0.0.1:0").ok());

    // Nobody answers at the seed: POOL_ERR_CLUSTER, naming it.
    pool_options_t dead_node = Pool::default_options();
    dead_node.dialer_retries = 1;
    Cluster dead = Cluster::from_seeds({"127.0.0.1:1"}, &dead_node);
    std::optional<Error> unreachable = thrown([&] { (void)dead.get("k", 2000ms); });
    CHECK(unreachable.has_value() && unreachable->code() == POOL_ERR_CLUSTER);
    CHECK(unreachable.has_value() && std::strstr(unreachable->what(), "127.0.0.1:1") != nullptr);
    e = thrown([&] { dead.refresh(2000ms); });
    CHECK(e.has_value() && e->code() == POOL_ERR_CLUSTER);
    redispool::Result<Conn> r = dead.get_nothrow("k", 2000ms);
    CHECK(!r.ok() && r.code() == POOL_ERR_CLUSTER);
    CHECK(dead.info().refresh_errors >= 2 && dead.info().slots_covered == 0);
    bool no_master = true;
    for (const pool_cluster_node_t &n : dead.nodes()) no_master = no_master && n.master == 0;
    CHECK(no_master);

    section("Cluster move, close");
    Conn outlives = cluster.get(key);
    Cluster moved = std::move(cluster);
    CHECK(!cluster && static_cast<bool>(moved));
    e = thrown([&] { (void)cluster.get(key); });
    CHECK(e.has_value() && e->code() == POOL_ERR_INVALID_ARG);
    moved.close();
    e = thrown([&] { (void)moved.get(key); });
    CHECK(e.has_value() && e->code() == POOL_ERR_CLOSED);
    e = thrown([&] { moved.close(); });
    CHECK(e.has_value() && e->code() == POOL_ERR_CLOSED);
    CHECK(outlives.command({"GET", key}).str() == "v7");
    outlives.reset();
    CHECK(!outlives && moved.stats().total_conns == 0);
}

static void sentinel(const std::vector<std::string> &sentinels, const std::string &master_name,
                     const std::string &master_addr, const std::string &replica_addr) {
    section("Pool::sentinel reaches the master");
    pool_options_t node = Pool::default_options();
    node.pool_size = 2;
    node.pool_timeout_ms = 10000;
    Pool pool = Pool::sentinel(master_name, sentinels, &node);
    CHECK(static_cast<bool>(pool));
    CHECK(pool.sentinel_master_addr() == master_addr);
    {
        Conn conn = pool.get();
        Reply role = conn.command({"ROLE"});
        CHECK(role.is_array() && role[0].str() == "master");
        CHECK(conn.node().empty() && conn.cluster() == nullptr && conn.pool() == pool.native());
        conn.command({"DEL", "cpp:sentinel:counter"});
        CHECK(conn.command({"INCR", "cpp:sentinel:counter"}).integer() == 1);
    }
    {
        Conn again = pool.get();
        CHECK(again.command({"INCR", "cpp:sentinel:counter"}).integer() == 2);
    }
    pool_stats_t st = pool.stats();
    CHECK(st.hits >= 1 && st.total_conns >= 1);

    section("Conn::wait_replicas waits for the replica; Pool::sentinel_stats");
    {
        Conn conn = pool.get();
        CHECK(conn.command({"SET", "cpp:sentinel:waited", "1"}).str() == "OK");
        CHECK(conn.wait_replicas(1, 10000ms) == 1);
        // Two replicas never acknowledge: the deployment has one.
        int acked = -1;
        redispool::Result<int> two = conn.wait_replicas_nothrow(2, 100ms, &acked);
        CHECK(!two.ok() && two.code() == POOL_ERR_TIMEOUT && acked == 1);
        std::optional<Error> bad = thrown([&] { (void)conn.wait_replicas(-1, 100ms); });
        CHECK(bad.has_value() && bad->code() == POOL_ERR_INVALID_ARG);
        CHECK(conn.command({"GET", "cpp:sentinel:waited"}).str() == "1");
    }
    pool_sentinel_stats_t ss = pool.sentinel_stats();
    CHECK(ss.struct_size == sizeof ss && ss.in_failover == 0 && ss.failovers == 0);

    // The other form: options built by hand, without exceptions.
    pool_sentinel_options_t so = Pool::default_sentinel_options();
    std::vector<const char *> addrs;
    for (const std::string &s : sentinels) addrs.push_back(s.c_str());
    so.master_name = master_name.c_str();
    so.sentinel_addrs = addrs.data();
    so.sentinel_addrs_len = addrs.size();
    redispool::Result<Pool> opened = Pool::open_sentinel(so, &node);
    CHECK(opened.ok());
    redispool::Result<Conn> conn = opened->get_nothrow();
    CHECK(conn.ok() && conn->command({"GET", "cpp:sentinel:counter"}).str() == "2");

    section("Sentinel errors are redispool::Error with their code");
    std::optional<Error> e = thrown([&] { (void)Pool::sentinel("", sentinels); });
    CHECK(e.has_value() && e->code() == POOL_ERR_INVALID_ARG);
    e = thrown([&] { (void)Pool::sentinel(master_name, {}); });
    CHECK(e.has_value() && e->code() == POOL_ERR_INVALID_ARG);
    Pool plain("redis://" + master_addr);
    e = thrown([&] { (void)plain.sentinel_master_addr(); });
    CHECK(e.has_value() && e->code() == POOL_ERR_INVALID_ARG);
    e = thrown([&] { (void)plain.sentinel_stats(); });
    CHECK(e.has_value() && e->code() == POOL_ERR_INVALID_ARG);
    {
        // On a replica WAIT is refused: POOL_ERR_IO with the server's text.
        Pool replica_pool("redis://" + replica_addr);
        Conn on_replica = replica_pool.get();
        redispool::Result<int> refused = on_replica.wait_replicas_nothrow(1, 100ms);
        CHECK(!refused.ok() && refused.code() == POOL_ERR_IO);
    }
    pool_options_t quick = Pool::default_options();
    quick.dial_timeout_ms = 1000;
    quick.dialer_retries = 1;
    Pool nobody = Pool::sentinel(master_name, {"127.0.0.1:1"}, &quick);
    e = thrown([&] { (void)nobody.sentinel_master_addr(); });
    CHECK(e.has_value() && e->code() == POOL_ERR_DIAL);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        std::fprintf(stderr,
                     "usage: %s SEED,... SENTINEL,... MASTER_NAME MASTER_ADDR REPLICA_ADDR\n",
                     argv[0]);
        return 2;
    }
    const std::vector<std::string> seeds = split(argv[1]);
    const std::vector<std::string> sentinels = split(argv[2]);
    if (seeds.size() < 3 || sentinels.empty()) {
        std::fprintf(stderr, "need 3 cluster masters and at least one sentinel\n");
        return 2;
    }
    return run_checks([&] {
        routing(seeds);
        sentinel(sentinels, argv[3], argv[4], argv[5]);
    });
}
