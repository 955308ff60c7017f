//! The cluster URL (go-redis `ParseClusterURL`): seeds in repeated `addr` parameters, the
//! cluster's own parameters, and node options as in `parse_url`.

use super::addr;
use super::redact::{REDACTED, Redactor};
use super::{
    MAX_URL_LEN, UrlConfig, UrlDuration, parse_count, parse_duration_param, parse_url,
    percent_decode, raw_password, split_scheme,
};
use crate::error::Error;

/// A cluster URL (go-redis `ParseClusterURL`): a `redis://` URL naming one node, more
/// nodes in repeated `addr=host:port` parameters, and the cluster's own parameters; every
/// other parameter is a node pool option as in `parse_url`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterUrl {
    /// The node options; `base.addr` is the first seed.
    pub base: UrlConfig,
    /// Every seed: the URL's host first, then each `addr` parameter.
    pub seeds: Vec<String>,
    pub max_redirects: Option<i32>,
    pub refresh_min_interval: Option<UrlDuration>,
}

/// The parameters a cluster URL has on top of `parse_url`'s.
const CLUSTER_PARAMS: [&str; 3] = ["addr", "max_redirects", "refresh_min_interval"];

/// Parses `redis://[[user][:password]@]host:port[?addr=host2:port2&addr=...&max_redirects=N&
/// refresh_min_interval=D&<node options>]`, or `rediss://` for a cluster reached over TLS
/// (the nodes' TLS ports are then taken from CLUSTER SHARDS). Only TCP (no `unix://`);
/// a database number other than 0 is refused (a cluster has only db 0). The password
/// is never shown in a message.
pub fn parse_cluster_url(s: &str) -> Result<ClusterUrl, Error> {
    if s.len() > MAX_URL_LEN {
        return Err(Error::invalid(format!(
            "redis: URL is too long ({} bytes, at most {MAX_URL_LEN})",
            s.len()
        )));
    }
    match split_scheme(s) {
        Some((scheme, _))
            if scheme.eq_ignore_ascii_case("redis") || scheme.eq_ignore_ascii_case("rediss") => {}
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("unix") => {
            return Err(Error::invalid(
                "redis: a cluster URL is redis://host:port…: cluster nodes are reached over TCP",
            ));
        }
        // parse_url words every other scheme error.
        _ => {
            parse_url(s)?;
            return Err(Error::invalid("redis: invalid cluster URL"));
        }
    }
    let redact = Redactor::new(raw_password(s));
    let (head, query) = match s.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (s, None),
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut out = ClusterUrl {
        base: UrlConfig::default(),
        seeds: Vec::new(),
        max_redirects: None,
        refresh_min_interval: None,
    };
    let mut extra = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !CLUSTER_PARAMS.contains(&name) {
            kept.push(pair);
            continue;
        }
        let Some(value) = percent_decode(value) else {
            return Err(Error::invalid(format!(
                "redis: option {name}: invalid percent-encoding"
            )));
        };
        match name {
            "addr" if value.is_empty() => {}
            "addr" => extra.push(value),
            "max_redirects" => {
                if out.max_redirects.is_some() {
                    return Err(Error::invalid(
                        "redis: option max_redirects is given more than once",
                    ));
                }
                if !value.is_empty() {
                    out.max_redirects = Some(parse_count(name, &value, &redact)?);
                }
            }
            _ => {
                if out.refresh_min_interval.is_some() {
                    return Err(Error::invalid(
                        "redis: option refresh_min_interval is given more than once",
                    ));
                }
                if !value.is_empty() {
                    out.refresh_min_interval = Some(parse_duration_param(name, &value, &redact)?);
                }
            }
        }
    }
    let rebuilt = if kept.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    out.base = parse_url(&rebuilt)?;
    if out.base.db.is_some_and(|db| db != 0) {
        return Err(Error::invalid(
            "redis: a cluster has only database 0 (db in the URL)",
        ));
    }
    out.seeds.push(out.base.addr.clone());
    for a in extra {
        if redact.leaks(&a) {
            return Err(Error::invalid(format!("redis: option addr: {REDACTED}")));
        }
        // The one address rule, as for the URL's own host (a seed is dialed over TCP).
        addr::split_host_port(&a)
            .map_err(|e| Error::invalid(format!("redis: option addr: {e}")))?;
        if !out.seeds.contains(&a) {
            out.seeds.push(a);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_cluster_options() {
        let c = parse_cluster_url(
            "redis://u:p%40ss@127.0.0.1:7000?addr=127.0.0.1:7001&pool_size=4&addr=127.0.0.1%3A7002&max_redirects=5&refresh_min_interval=250ms",
        )
        .unwrap();
        assert_eq!(
            c.seeds,
            vec!["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]
        );
        assert_eq!(c.base.pool_size, Some(4));
        assert_eq!(c.base.password.as_deref(), Some("p@ss"));
        assert_eq!(c.max_redirects, Some(5));
        assert_eq!(c.refresh_min_interval, Some(UrlDuration::Millis(250)));

        let plain = parse_cluster_url("redis://h:1").unwrap();
        assert_eq!(plain.seeds, vec!["h:1"]);
        assert_eq!(plain.max_redirects, None);
    }

    #[test]
    fn refusals() {
        let msg = |u: &str| parse_cluster_url(u).unwrap_err().to_string();
        assert!(msg("unix:///tmp/x.sock").contains("over TCP"));
        assert!(msg("redis://h:1/2").contains("only database 0"));
        assert!(msg("redis://h:1?max_redirects=1&max_redirects=2").contains("more than once"));
        assert!(msg("redis://h:1?max_redirects=-1").contains("max_redirects"));
        assert!(msg("redis://h:1?refresh_min_interval=xs").contains("refresh_min_interval"));
        assert!(msg("redis://h:1?bogus=1").contains("unexpected option: bogus"));
        assert!(msg("http://h:1").contains("scheme"));
        for (bad, culprit) in [
            ("%20127.0.0.1:7001", "\" 127.0.0.1\""),
            ("127.0.0.1:%2B7001", "\"+7001\""),
            ("127.0.0.1:7001%20", "\"7001 \""),
            ("127.0.0.1:0", "\"0\""),
            ("127.0.0.1", "host:port"),
            ("::1:7001", "[v6]:port"),
        ] {
            let m = msg(&format!("redis://h:1?addr={bad}"));
            assert!(
                m.contains("option addr") && m.contains(culprit),
                "{bad}: {m}"
            );
        }
        let secret = msg("redis://:hunter2@h:1?addr=hunter2");
        assert!(!secret.contains("hunter2"), "{secret}");
    }
}
