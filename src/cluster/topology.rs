//! The slot map of a cluster, parsed from CLUSTER SHARDS (Redis 7+) or CLUSTER SLOTS.

use std::collections::HashMap;

use super::slot::SLOTS;
use crate::redis::addr::{
    check_host, check_port, join_host_port, normalize_server_addr, parse_port,
};
use crate::redis::resp::Reply;

/// The most nodes (masters and replicas) a slot map may name; Redis advises at most 1000.
const MAX_NODES: usize = 4 * SLOTS;

/// What a slot map reply may hold. A valid map has at most one range per slot, so at most
/// 16384 ranges, and masters. A reply past this is refused, so that building the map takes
/// time and memory bounded by the map, not by what a broken or hostile node sends (the
/// reply itself is bounded by the pool's reply limits). It also keeps a master's index in
/// the map below `NO_NODE`.
struct Caps {
    what: &'static str,
    ranges: usize,
    nodes: usize,
}

impl Caps {
    fn new(what: &'static str) -> Self {
        Caps {
            what,
            ranges: 0,
            nodes: 0,
        }
    }

    fn range(&mut self) -> Result<(), TopologyError> {
        self.ranges += 1;
        if self.ranges > SLOTS {
            return err(format!("{}: more than {SLOTS} slot ranges", self.what));
        }
        Ok(())
    }

    fn node(&mut self) -> Result<(), TopologyError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return err(format!("{}: more than {MAX_NODES} nodes", self.what));
        }
        Ok(())
    }
}

/// One shard: the slot ranges it serves, its master and its replicas ("host:port").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub slots: Vec<(u16, u16)>,
    pub master: String,
    pub replicas: Vec<String>,
}

/// Why a topology reply could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, TopologyError> {
    Err(TopologyError(msg.into()))
}

fn text(r: &Reply) -> Option<String> {
    match r {
        Reply::String(s) | Reply::Status(s) | Reply::Verb { text: s, .. } => {
            Some(String::from_utf8_lossy(s).into_owned())
        }
        Reply::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn int(r: &Reply) -> Option<i64> {
    match r {
        Reply::Integer(i) => Some(*i),
        Reply::String(s) | Reply::Status(s) => std::str::from_utf8(s).ok()?.parse().ok(),
        _ => None,
    }
}

/// Key/value pairs of a RESP3 map or a RESP2 flat array.
fn pairs(r: &Reply) -> Option<impl Iterator<Item = (String, &Reply)>> {
    let items = match r {
        Reply::Map(v) | Reply::Array(v) if v.len() % 2 == 0 => v,
        _ => return None,
    };
    Some(
        items
            .chunks_exact(2)
            .filter_map(|kv| Some((text(&kv[0])?, &kv[1]))),
    )
}

fn slot(v: i64) -> Result<u16, TopologyError> {
    u16::try_from(v)
        .ok()
        .filter(|&s| usize::from(s) < SLOTS)
        .map_or_else(|| err(format!("slot {v} out of range")), Ok)
}

/// "host:port", with the host the reply gave or, when it gave none ("" or "?": the node
/// does not know its own address), the host the reply came from. IPv6 hosts are bracketed.
/// Held to the one address rule (`redis::addr`).
fn address(host: Option<String>, port: i64, queried_host: &str) -> Result<String, TopologyError> {
    let port = check_port(port).map_err(|e| TopologyError(format!("node address: {e}")))?;
    let host = match host {
        Some(h) if !h.is_empty() && h != "?" => h,
        _ => queried_host.to_string(),
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&host);
    check_host(bare).map_err(|e| TopologyError(format!("node address: {e}")))?;
    Ok(join_host_port(bare, port))
}

/// Parses a CLUSTER SHARDS reply. A shard without slots is skipped; within a shard the
/// master is the node with role "master" (preferring one whose health is not "fail").
/// `tls`: the cluster is reached over TLS, so a node's address has its "tls-port" (a node
/// without one is skipped), else its plain "port".
pub fn parse_shards(
    reply: &Reply,
    queried_host: &str,
    tls: bool,
) -> Result<Vec<Shard>, TopologyError> {
    let Reply::Array(shards) = reply else {
        return err("CLUSTER SHARDS: not an array");
    };
    let mut caps = Caps::new("CLUSTER SHARDS");
    let mut out = Vec::new();
    for shard in shards {
        let Some(fields) = pairs(shard) else {
            return err("CLUSTER SHARDS: a shard is not a map");
        };
        let mut slots = Vec::new();
        let mut masters: Vec<(String, bool)> = Vec::new();
        let mut replicas = Vec::new();
        for (key, value) in fields {
            match key.as_str() {
                "slots" => {
                    let (Reply::Array(v) | Reply::Set(v)) = value else {
                        return err("CLUSTER SHARDS: slots is not an array");
                    };
                    for pair in v.chunks(2) {
                        let [a, b] = pair else {
                            return err("CLUSTER SHARDS: odd slots list");
                        };
                        let (Some(a), Some(b)) = (int(a), int(b)) else {
                            return err("CLUSTER SHARDS: a slot is not an integer");
                        };
                        let (a, b) = (slot(a)?, slot(b)?);
                        if a > b {
                            return err(format!("CLUSTER SHARDS: slot range {a}-{b}"));
                        }
                        caps.range()?;
                        slots.push((a, b));
                    }
                }
                "nodes" => {
                    let Reply::Array(nodes) = value else {
                        return err("CLUSTER SHARDS: nodes is not an array");
                    };
                    for node in nodes {
                        let Some(nf) = pairs(node) else {
                            return err("CLUSTER SHARDS: a node is not a map");
                        };
                        let (mut ip, mut endpoint, mut port, mut role, mut health) =
                            (None, None, None, None, None);
                        let mut tls_port = None;
                        for (k, v) in nf {
                            match k.as_str() {
                                "ip" => ip = text(v),
                                "endpoint" => endpoint = text(v),
                                "port" => port = int(v),
                                "tls-port" => tls_port = int(v),
                                "role" => role = text(v),
                                "health" => health = text(v),
                                _ => {}
                            }
                        }
                        let port = if tls { tls_port } else { port };
                        let Some(port) = port else {
                            // No port for the transport the cluster is reached by (a
                            // TLS-only node for a plain cluster, or the reverse).
                            continue;
                        };
                        caps.node()?;
                        let host = endpoint.filter(|e| !e.is_empty() && e != "?").or(ip);
                        let addr = address(host, port, queried_host)?;
                        let failed = health.as_deref() == Some("fail");
                        if role.as_deref() == Some("master") {
                            masters.push((addr, failed));
                        } else if !failed {
                            replicas.push(addr);
                        }
                    }
                }
                _ => {}
            }
        }
        if slots.is_empty() {
            continue;
        }
        masters.sort_by_key(|(_, failed)| *failed);
        let Some((master, _)) = masters.into_iter().next() else {
            return err("CLUSTER SHARDS: a shard with slots has no master");
        };
        out.push(Shard {
            slots,
            master,
            replicas,
        });
    }
    Ok(out)
}

/// Parses a CLUSTER SLOTS reply: one entry per slot range, `[start, end, master, replicas...]`
/// where each node is `[host, port, id, ...]`. Ranges of one master become one shard.
pub fn parse_slots(reply: &Reply, queried_host: &str) -> Result<Vec<Shard>, TopologyError> {
    let Reply::Array(ranges) = reply else {
        return err("CLUSTER SLOTS: not an array");
    };
    let mut caps = Caps::new("CLUSTER SLOTS");
    let mut out: Vec<Shard> = Vec::new();
    // Master address -> its shard in `out`.
    let mut shard_of: HashMap<String, usize> = HashMap::new();
    for range in ranges {
        let Reply::Array(items) = range else {
            return err("CLUSTER SLOTS: a range is not an array");
        };
        if items.len() < 3 {
            return err("CLUSTER SLOTS: a range without a master");
        }
        let (Some(a), Some(b)) = (int(&items[0]), int(&items[1])) else {
            return err("CLUSTER SLOTS: a slot is not an integer");
        };
        let (a, b) = (slot(a)?, slot(b)?);
        if a > b {
            return err(format!("CLUSTER SLOTS: slot range {a}-{b}"));
        }
        caps.range()?;
        let mut nodes = Vec::new();
        for node in &items[2..] {
            let Reply::Array(n) = node else {
                return err("CLUSTER SLOTS: a node is not an array");
            };
            let (Some(host), Some(port)) = (n.first().map(text), n.get(1).and_then(int)) else {
                return err("CLUSTER SLOTS: a node without host and port");
            };
            caps.node()?;
            nodes.push(address(host, port, queried_host)?);
        }
        let master = nodes.remove(0);
        match shard_of.get(&master) {
            Some(&i) => out[i].slots.push((a, b)),
            None => {
                shard_of.insert(master.clone(), out.len());
                out.push(Shard {
                    slots: vec![(a, b)],
                    master,
                    replicas: nodes,
                });
            }
        }
    }
    Ok(out)
}

/// A MOVED / ASK / retryable error reply, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// "MOVED <slot> <host:port>": the slot lives there now.
    Moved { slot: u16, addr: String },
    /// "ASK <slot> <host:port>": this key is being migrated there; send ASKING first.
    Ask { slot: u16, addr: String },
    /// "TRYAGAIN ...", "CLUSTERDOWN ...": the command did not run; retry after a pause.
    Retry,
}

/// Recognises a redirect or retryable cluster error in an error reply's text.
pub fn parse_redirect(error: &[u8]) -> Option<Redirect> {
    if error.starts_with(b"TRYAGAIN") || error.starts_with(b"CLUSTERDOWN") {
        return Some(Redirect::Retry);
    }
    let moved = error.starts_with(b"MOVED ");
    if !moved && !error.starts_with(b"ASK ") {
        return None;
    }
    let s = std::str::from_utf8(error).ok()?;
    let mut words = s.split_ascii_whitespace().skip(1);
    let slot = words.next()?.parse::<u16>().ok()?;
    if usize::from(slot) >= super::slot::SLOTS {
        return None;
    }
    let addr = words.next()?;
    // Redis 7 may send ":port" when the node's endpoint is unknown; the caller fills in
    // the host it sent the command to. Otherwise the one address rule (`redis::addr`);
    // Redis writes an IPv6 host without brackets.
    let addr = match addr.strip_prefix(':').filter(|p| !p.contains(':')) {
        Some(port) => format!(":{}", parse_port(port).ok()?),
        None => normalize_server_addr(addr).ok()?,
    };
    Some(if moved {
        Redirect::Moved { slot, addr }
    } else {
        Redirect::Ask { slot, addr }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Reply {
        Reply::String(x.as_bytes().to_vec())
    }

    fn node(ip: &str, port: i64, role: &str, health: &str) -> Reply {
        Reply::Array(vec![
            s("id"),
            s("abc"),
            s("port"),
            Reply::Integer(port),
            s("ip"),
            s(ip),
            s("endpoint"),
            s(ip),
            s("role"),
            s(role),
            s("replication-offset"),
            Reply::Integer(1),
            s("health"),
            s(health),
        ])
    }

    #[test]
    fn shards_over_tls_use_the_tls_port() {
        let with_tls = |port: i64, tls_port: Option<i64>, role: &str| {
            let Reply::Array(mut fields) = node("127.0.0.1", port, role, "online") else {
                unreachable!()
            };
            if let Some(t) = tls_port {
                fields.extend([s("tls-port"), Reply::Integer(t)]);
            }
            Reply::Array(fields)
        };
        let reply = Reply::Array(vec![Reply::Array(vec![
            s("slots"),
            Reply::Array(vec![Reply::Integer(0), Reply::Integer(16383)]),
            s("nodes"),
            Reply::Array(vec![
                with_tls(7000, Some(8000), "master"),
                with_tls(7001, None, "replica"),
                with_tls(7002, Some(8002), "replica"),
            ]),
        ])]);
        let plain = parse_shards(&reply, "h", false).unwrap();
        assert_eq!(plain[0].master, "127.0.0.1:7000");
        assert_eq!(plain[0].replicas, vec!["127.0.0.1:7001", "127.0.0.1:7002"]);
        let tls = parse_shards(&reply, "h", true).unwrap();
        assert_eq!(tls[0].master, "127.0.0.1:8000");
        // A node without a TLS port cannot be reached over TLS.
        assert_eq!(tls[0].replicas, vec!["127.0.0.1:8002"]);
    }

    #[test]
    fn shards_resp2_and_resp3() {
        let shard = |slots: Vec<i64>, nodes: Vec<Reply>| {
            Reply::Array(vec![
                s("slots"),
                Reply::Array(slots.into_iter().map(Reply::Integer).collect()),
                s("nodes"),
                Reply::Array(nodes),
            ])
        };
        let reply = Reply::Array(vec![
            shard(
                vec![0, 5460, 10923, 10923],
                vec![
                    node("127.0.0.1", 7000, "master", "online"),
                    node("127.0.0.1", 7003, "replica", "online"),
                ],
            ),
            shard(
                vec![5461, 10922],
                vec![
                    node("127.0.0.1", 7001, "master", "fail"),
                    node("127.0.0.1", 7004, "master", "online"),
                ],
            ),
            shard(vec![], vec![node("127.0.0.1", 7009, "master", "online")]),
        ]);
        let shards = parse_shards(&reply, "10.0.0.1", false).unwrap();
        assert_eq!(shards.len(), 2);
        assert_eq!(shards[0].master, "127.0.0.1:7000");
        assert_eq!(shards[0].slots, vec![(0, 5460), (10923, 10923)]);
        assert_eq!(shards[0].replicas, vec!["127.0.0.1:7003"]);
        assert_eq!(shards[1].master, "127.0.0.1:7004");

        // RESP3: maps; an unknown endpoint falls back to the queried host.
        let resp3 = Reply::Array(vec![Reply::Map(vec![
            s("slots"),
            Reply::Array(vec![Reply::Integer(0), Reply::Integer(16383)]),
            s("nodes"),
            Reply::Array(vec![Reply::Map(vec![
                s("port"),
                Reply::Integer(7000),
                s("endpoint"),
                s("?"),
                s("role"),
                s("master"),
            ])]),
        ])]);
        let shards = parse_shards(&resp3, "10.0.0.1", false).unwrap();
        assert_eq!(shards[0].master, "10.0.0.1:7000");
        assert_eq!(shards[0].slots, vec![(0, 16383)]);

        let bad = Reply::Array(vec![shard(vec![0, 16384], vec![])]);
        assert!(parse_shards(&bad, "h", false).is_err());
        assert!(parse_shards(&Reply::Nil, "h", false).is_err());
    }

    #[test]
    fn slots_reply() {
        let n = |h: &str, p: i64| Reply::Array(vec![s(h), Reply::Integer(p), s("id")]);
        let reply = Reply::Array(vec![
            Reply::Array(vec![
                Reply::Integer(0),
                Reply::Integer(100),
                n("127.0.0.1", 7000),
                n("127.0.0.1", 7003),
            ]),
            Reply::Array(vec![
                Reply::Integer(101),
                Reply::Integer(16383),
                n("", 7001),
            ]),
            Reply::Array(vec![
                Reply::Integer(200),
                Reply::Integer(200),
                n("127.0.0.1", 7000),
            ]),
            Reply::Array(vec![
                Reply::Integer(300),
                Reply::Integer(300),
                n("::1", 7002),
            ]),
        ]);
        let shards = parse_slots(&reply, "host").unwrap();
        assert_eq!(shards.len(), 3);
        assert_eq!(shards[0].slots, vec![(0, 100), (200, 200)]);
        assert_eq!(shards[0].replicas, vec!["127.0.0.1:7003"]);
        assert_eq!(shards[1].master, "host:7001");
        assert_eq!(shards[2].master, "[::1]:7002");
        assert_eq!(
            parse_slots(
                &Reply::Array(vec![Reply::Array(vec![
                    Reply::Integer(0),
                    Reply::Integer(1),
                    n("", 7001),
                ])]),
                "[::1]"
            )
            .unwrap()[0]
                .master,
            "[::1]:7001"
        );
        // The one address rule (`redis::addr`) for node addresses.
        for (host, port) in [
            (" 127.0.0.1", 7000),
            ("127.0.0.1 ", 7000),
            ("a b", 7000),
            ("h", 0),
        ] {
            let reply = Reply::Array(vec![Reply::Array(vec![
                Reply::Integer(0),
                Reply::Integer(1),
                n(host, port),
            ])]);
            let e = parse_slots(&reply, "host").unwrap_err();
            assert!(e.0.starts_with("node address: "), "{host:?}: {e:?}");
        }
    }

    #[test]
    fn redirects() {
        assert_eq!(
            parse_redirect(b"MOVED 3999 127.0.0.1:6381"),
            Some(Redirect::Moved {
                slot: 3999,
                addr: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            parse_redirect(b"ASK 3999 127.0.0.1:6381"),
            Some(Redirect::Ask {
                slot: 3999,
                addr: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            parse_redirect(b"TRYAGAIN Multiple keys request during rehashing of slot"),
            Some(Redirect::Retry)
        );
        assert_eq!(
            parse_redirect(b"CLUSTERDOWN The cluster is down"),
            Some(Redirect::Retry)
        );
        assert_eq!(parse_redirect(b"MOVED 99999 h:1"), None);
        assert_eq!(parse_redirect(b"MOVED x h:1"), None);
        assert_eq!(parse_redirect(b"WRONGTYPE Operation"), None);
        assert_eq!(parse_redirect(b"MOVEDX 1 h:1"), None);
        // The one address rule (`redis::addr`); an IPv6 host comes without brackets.
        let moved = |s: &str| match parse_redirect(s.as_bytes()) {
            Some(Redirect::Moved { addr, .. }) => Some(addr),
            _ => None,
        };
        assert_eq!(moved("MOVED 1 ::1:7000").as_deref(), Some("[::1]:7000"));
        assert_eq!(moved("MOVED 1 [::1]:7000").as_deref(), Some("[::1]:7000"));
        assert_eq!(moved("MOVED 1 :7000").as_deref(), Some(":7000"));
        for bad in [
            "MOVED 1 h:+7000",
            "MOVED 1 h:0",
            "MOVED 1 h:65536",
            "MOVED 1 h",
            "MOVED 1 :+7000",
            "MOVED 1 h\x01:7000",
            "MOVED 1 h%:7000",
        ] {
            assert_eq!(moved(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn slot_maps_are_capped() {
        let n = |port: i64| Reply::Array(vec![s("10.0.0.1"), Reply::Integer(port)]);
        let range = |a: i64, b: i64, nodes: Vec<Reply>| {
            let mut v = vec![Reply::Integer(a), Reply::Integer(b)];
            v.extend(nodes);
            Reply::Array(v)
        };
        // The largest valid map: 16384 one-slot ranges, each its own master.
        let full = Reply::Array((0..16384).map(|i| range(i, i, vec![n(1 + i)])).collect());
        assert_eq!(parse_slots(&full, "h").unwrap().len(), 16384);
        // One range more can only overlap: refused.
        let over = Reply::Array((0..16385).map(|_| range(0, 0, vec![n(7000)])).collect());
        let e = parse_slots(&over, "h").unwrap_err();
        assert!(e.0.contains("more than 16384 slot ranges"), "{e:?}");
        // Endless replica lists too.
        let crowd = Reply::Array(vec![range(
            0,
            16383,
            (0..MAX_NODES as i64 + 1)
                .map(|i| n(1 + i % 60000))
                .collect(),
        )]);
        let e = parse_slots(&crowd, "h").unwrap_err();
        assert!(e.0.contains("nodes"), "{e:?}");
        let shard = Reply::Array(vec![
            s("slots"),
            Reply::Array(
                (0..16385)
                    .flat_map(|_| [Reply::Integer(5), Reply::Integer(5)])
                    .collect(),
            ),
            s("nodes"),
            Reply::Array(vec![node("10.0.0.1", 7000, "master", "online")]),
        ]);
        let e = parse_shards(&Reply::Array(vec![shard]), "h", false).unwrap_err();
        assert!(e.0.contains("more than 16384 slot ranges"), "{e:?}");
    }
}
