//! The C++ wrapper's `redispool::Cluster` and `Pool::sentinel` (include/redispool.hpp),
//! through `tests/cpp/cluster_sentinel.cpp`, against a real Redis Cluster of 3 masters
//! (`common::cluster::ClusterHarness`) and a real master + replica + 3 sentinels
//! deployment (`common::sentinel::Deployment`), all on free loopback ports.
//!
//! The program checks keys routed to the master of their slot (CLUSTER KEYSLOT agrees,
//! every key found again through a cluster that follows no redirects), a MOVED followed
//! from a conn to the wrong node, cluster stats and node pools, errors thrown as
//! `redispool::Error` with their code (POOL_ERR_CLUSTER, ...), and a sentinel pool
//! reaching the master (ROLE, INCR). Plain and under valgrind.

mod common;

use common::cluster::ClusterHarness;
use common::sentinel::{Deployment, MASTER_NAME};
use common::{
    Link, RUN_TIMEOUT, assert_stdout_has, assert_success, build_cxx, describe, run,
    run_under_memcheck, valgrind_available,
};
use std::path::PathBuf;
use std::process::Output;

const SRC: &str = "tests/cpp/cluster_sentinel.cpp";

fn build(name: &str) -> PathBuf {
    build_cxx(name, &[SRC], Link::Shared, &["-pthread"])
}

/// Starts the cluster and the sentinels, then calls `run_exe` with the program's
/// arguments for them: SEEDS SENTINELS MASTER_NAME MASTER_ADDR REPLICA_ADDR.
fn run_against_deployments(run_exe: impl FnOnce(&[&str]) -> Output) -> Output {
    let cluster = ClusterHarness::start(3, 0);
    let sentinels = Deployment::start();
    let seeds = cluster.seed_addrs().join(",");
    let sentinel_addrs = sentinels.sentinel_addrs().join(",");
    let master = sentinels.master.addr();
    let replica = sentinels.replica.addr();
    run_exe(&[&seeds, &sentinel_addrs, MASTER_NAME, &master, &replica])
}

fn assert_all_passed(output: &Output) {
    assert_success(output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("FAIL"), "{}", describe(output));
    assert_stdout_has(output, "checks passed\n");
}

#[test]
fn cpp_cluster_and_sentinel() {
    let exe = build("cpp-cluster-sentinel");
    let output = run_against_deployments(|args| run(&exe, args, &[], RUN_TIMEOUT));
    assert_all_passed(&output);
    // A few of the checks, so that a program that skipped them would not pass.
    for line in [
        "ok   slots_agree\n",
        "ok   nodes_hit.size() == 3\n",
        "ok   shard_messages == 3\n",
        "ok   all_found\n",
        "ok   r.is_error() && starts_with(r.str(), \"MOVED\")\n",
        "ok   cluster.info().moved == moved_before + 1\n",
        "ok   unreachable.has_value() && unreachable->code() == POOL_ERR_CLUSTER\n",
        "ok   role.is_array() && role[0].str() == \"master\"\n",
        "ok   again.command({\"INCR\", \"cpp:sentinel:counter\"}).integer() == 2\n",
        "ok   conn.wait_replicas(1, 10000ms) == 1\n",
        "ok   !two.ok() && two.code() == POOL_ERR_TIMEOUT && acked == 1\n",
        "ok   !refused.ok() && refused.code() == POOL_ERR_IO\n",
        "ok   cluster.slot_node(Cluster::key_slot(key)) == owner\n",
        "ok   !none.ok() && none.code() == POOL_ERR_CLUSTER\n",
    ] {
        assert_stdout_has(&output, line);
    }
}

#[test]
fn cpp_cluster_and_sentinel_under_valgrind() {
    if !valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let exe = build("cpp-cluster-sentinel-valgrind");
    let output =
        run_against_deployments(|args| run_under_memcheck(&exe, args, &[], RUN_TIMEOUT * 4));
    assert_all_passed(&output);
}
