//! The Redis Cluster test harness itself (tests/common/cluster.rs): it starts a settled
//! cluster, its `key_slot` agrees with Redis, it moves a slot with its keys, and a killed
//! master's replica takes over.

mod common;

use std::collections::BTreeMap;

use common::cluster::{
    ClusterHarness, Reply, Role, SLOTS, crc16_xmodem, hashtag_for_slot, key_in_slot, key_slot,
};

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Keys made of letters, digits, `:`, `{` and `}`, about half of them with a well-formed
/// `{tag}` somewhere, plus the tricky hash-tag cases.
fn sample_keys(count: usize) -> Vec<String> {
    const ALPHABET: &[u8] = b"abcxyzABC0189:_-{}{}";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut keys: Vec<String> = [
        "foo",
        "123456789",
        "{user1000}.following",
        "{user1000}.followers",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "{}",
        "{",
        "}",
        "}{",
        "{a}",
        "a{b",
        "x}y{z}",
    ]
    .map(String::from)
    .to_vec();
    while keys.len() < count {
        let len = 1 + rng.below(16);
        let mut key: String = (0..len)
            .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())]))
            .collect();
        if rng.below(2) == 0 {
            let at = rng.below(key.len() + 1);
            let tag_len = rng.below(4);
            let tag: String = (0..tag_len)
                .map(|_| char::from(b'a' + rng.below(26) as u8))
                .collect();
            key.insert_str(at, &format!("{{{tag}}}"));
        }
        keys.push(key);
    }
    keys
}

#[test]
fn key_slot_matches_the_reference_vectors() {
    // The check value of CRC16/XMODEM and the examples of the Redis Cluster specification.
    assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
    assert_eq!(key_slot(b"123456789"), 0x31C3 % SLOTS);
    assert_eq!(key_slot(b"foo"), 12182);
    assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
    assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"user1000"));
    assert_eq!(key_slot(b"foo{}{bar}"), crc16_xmodem(b"foo{}{bar}") % SLOTS);
    assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    for slot in [0, 1, 42, 8191, 12182, SLOTS - 1] {
        assert_eq!(key_slot(key_in_slot(slot, "x").as_bytes()), slot);
        assert_eq!(key_slot(hashtag_for_slot(slot).as_bytes()), slot);
    }
}

#[test]
fn starts_a_settled_cluster_whose_slots_agree_with_key_slot() {
    let cluster = ClusterHarness::start(3, 1);

    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), 6);
    let masters: Vec<_> = nodes.iter().filter(|n| n.role == Role::Master).collect();
    assert_eq!(masters.len(), 3);
    assert_eq!(
        cluster.seed_addrs(),
        masters.iter().map(|m| m.addr.clone()).collect::<Vec<_>>()
    );
    for n in &nodes {
        assert!(n.alive && n.flags.is_empty(), "{n:?}");
        assert_eq!(cluster.node_id(&n.addr), n.id);
        assert_eq!(cluster.addr_of_id(&n.id), n.addr);
        let port: u16 = n.addr.rsplit(':').next().unwrap().parse().unwrap();
        assert!(port != 6379 && port <= 55535, "{}", n.addr);
        assert_eq!(cluster.command(&n.addr, &["PING"]), "PONG");
        if n.role == Role::Replica {
            let master = cluster.addr_of_id(n.master_id.as_deref().unwrap());
            assert!(masters.iter().any(|m| m.addr == master));
            assert_eq!(cluster.replicas_of(&master), vec![n.addr.clone()]);
        }
    }

    // Every slot is served by exactly one master, and every node's CLUSTER SLOTS says so.
    let mut owner: BTreeMap<u16, String> = BTreeMap::new();
    for m in &masters {
        for &(lo, hi) in &m.slots {
            for slot in lo..=hi {
                assert!(owner.insert(slot, m.addr.clone()).is_none(), "slot {slot}");
            }
        }
    }
    assert_eq!(owner.len(), usize::from(SLOTS));
    for n in &nodes {
        let info = cluster.command(&n.addr, &["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_slots_ok:16384"), "{info}");
        let mut covered = 0;
        for range in cluster.query(&n.addr, &["CLUSTER", "SLOTS"]).array() {
            let r = range.array();
            let (lo, hi) = (r[0].int() as u16, r[1].int() as u16);
            let port = r[2].array()[1].int();
            for slot in lo..=hi {
                assert_eq!(owner[&slot], format!("127.0.0.1:{port}"), "slot {slot}");
            }
            covered += usize::from(hi - lo) + 1;
        }
        assert_eq!(covered, usize::from(SLOTS), "CLUSTER SLOTS of {}", n.addr);
    }

    // key_slot agrees with CLUSTER KEYSLOT, and the master it names accepts the key.
    let node = &nodes[0].addr;
    for key in sample_keys(200) {
        let slot = key_slot(key.as_bytes());
        let theirs = cluster.query(node, &["CLUSTER", "KEYSLOT", &key]).int();
        assert_eq!(i64::from(slot), theirs, "slot of {key:?}");
        assert_eq!(cluster.master_of_key(key.as_bytes()), owner[&slot]);
    }
    let key = key_in_slot(5000, "k");
    let home = cluster.master_of_slot(5000);
    assert_eq!(cluster.command(&home, &["SET", &key, "v"]), "OK");
    for m in &masters {
        let reply = cluster.command(&m.addr, &["GET", &key]);
        if m.addr == home {
            assert_eq!(reply, "v");
        } else {
            assert_eq!(reply, format!("-MOVED 5000 {home}"));
        }
    }
}

#[test]
fn migrates_a_slot_with_its_keys() {
    let cluster = ClusterHarness::start(3, 1);
    let slot = 1234;
    let source = cluster.master_of_slot(slot);
    let target = cluster
        .seed_addrs()
        .into_iter()
        .find(|a| *a != source)
        .unwrap();
    let keys: Vec<String> = (0..250)
        .map(|i| key_in_slot(slot, &i.to_string()))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            cluster.command(&source, &["SET", key, &i.to_string()]),
            "OK"
        );
    }

    let mut migration = cluster.begin_migration(slot, &target);
    assert_eq!(
        (migration.source(), migration.target()),
        (&*source, &*target)
    );
    assert_eq!(migration.move_keys_batch(100), 100);
    assert_eq!(migration.keys_left(), 150);
    // The ASK window: moved keys are redirected with ASK, and served by the target only
    // after ASKING; keys not yet moved are still served by the source.
    let moved_key = cluster.query(
        &target,
        &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "1"],
    );
    let moved_key = String::from_utf8(moved_key.array()[0].bytes().to_vec()).unwrap();
    assert_eq!(
        cluster.command(&source, &["GET", &moved_key]),
        format!("-ASK {slot} {target}")
    );
    assert_eq!(
        cluster.command(&target, &["GET", &moved_key]),
        format!("-MOVED {slot} {source}")
    );
    let value = moved_key.rsplit(':').next().unwrap();
    assert_eq!(
        cluster.pipeline(&target, &[&["ASKING"], &["GET", &moved_key]]),
        vec![Reply::Status("OK".into()), Reply::Bulk(value.into())]
    );
    let unmoved = cluster.query(
        &source,
        &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "1"],
    );
    let unmoved = String::from_utf8(unmoved.array()[0].bytes().to_vec()).unwrap();
    assert_eq!(
        cluster.command(&source, &["GET", &unmoved]),
        unmoved.rsplit(':').next().unwrap()
    );
    // Each side shows the open slot in its own CLUSTER NODES line.
    let (source_id, target_id) = (cluster.node_id(&source), cluster.node_id(&target));
    let own_line = |addr: &str| {
        let nodes = cluster.command(addr, &["CLUSTER", "NODES"]);
        nodes
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap()
            .to_string()
    };
    assert!(own_line(&source).ends_with(&format!("[{slot}->-{target_id}]")));
    assert!(own_line(&target).ends_with(&format!("[{slot}-<-{source_id}]")));
    migration.finish();

    assert_eq!(cluster.master_of_slot(slot), target);
    for addr in cluster.all_addrs() {
        let owner = cluster.nodes().into_iter().find(|n| n.owns(slot)).unwrap();
        assert_eq!(owner.addr, target, "as seen from {addr}");
    }
    let count = |addr: &str| {
        cluster
            .query(addr, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
            .int()
    };
    assert_eq!((count(&source), count(&target)), (0, 250));
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(cluster.command(&target, &["GET", key]), i.to_string());
    }
    assert_eq!(
        cluster.command(&source, &["GET", &keys[0]]),
        format!("-MOVED {slot} {target}")
    );

    // And back, in small batches with a callback between them.
    let mut batches = Vec::new();
    cluster.migrate_slot_with(slot, &source, 60, |m| batches.push(m.moved()));
    assert_eq!(batches, vec![60, 120, 180, 240, 250]);
    assert_eq!(cluster.master_of_slot(slot), source);
    assert_eq!(cluster.command(&source, &["GET", &keys[249]]), "249");

    // An empty slot moves too.
    let empty = 9000;
    let to = cluster
        .seed_addrs()
        .into_iter()
        .find(|a| *a != cluster.master_of_slot(empty))
        .unwrap();
    cluster.migrate_slot(empty, &to);
    assert_eq!(cluster.master_of_slot(empty), to);
}

#[test]
fn a_killed_masters_replica_takes_over() {
    let cluster = ClusterHarness::start(3, 1);
    let victim = cluster.master_of_key(b"foo");
    let replica = cluster.replicas_of(&victim);
    assert_eq!(replica.len(), 1);
    // WAIT on the connection that wrote (it only counts that connection's writes).
    assert_eq!(
        cluster.pipeline(&victim, &[&["SET", "foo", "bar"], &["WAIT", "1", "5000"]]),
        vec![Reply::Status("OK".into()), Reply::Int(1)]
    );
    assert_eq!(cluster.command(&victim, &["SET", "{foo}2", "baz"]), "OK");
    cluster.wait_replicated(&victim);

    let promoted = cluster.kill_master_and_await_failover(&victim);
    assert_eq!(promoted, replica[0]);
    assert!(!cluster.is_alive(&victim));
    assert!(cluster.try_query(&victim, &["PING"]).is_err());
    assert_eq!(cluster.master_of_key(b"foo"), promoted);
    assert_eq!(cluster.command(&promoted, &["GET", "foo"]), "bar");
    assert_eq!(cluster.command(&promoted, &["GET", "{foo}2"]), "baz");
    assert!(
        cluster
            .command(&promoted, &["INFO", "replication"])
            .contains("role:master")
    );
    let seeds = cluster.seed_addrs();
    assert_eq!(seeds.len(), 3);
    assert!(seeds.contains(&promoted) && !seeds.contains(&victim));
    let dead = cluster
        .nodes()
        .into_iter()
        .find(|n| n.addr == victim)
        .unwrap();
    assert!(!dead.alive && dead.flags.contains(&"fail".to_string()) && dead.slots.is_empty());
    for addr in cluster.all_addrs().iter().filter(|a| **a != victim) {
        let info = cluster.command(addr, &["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{addr}: {info}");
    }
}
