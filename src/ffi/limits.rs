//! The limits the C header publishes, as `POOL_` twins of the core's constants (the core's
//! own names are kept out of the header by cbindgen.toml). The version macros
//! (`REDISPOOL_VERSION*`) are written from Cargo.toml by tests/header.rs.

/// The longest URL pool_new_url and pool_cluster_new_url accept, in bytes (without the NUL).
pub const POOL_MAX_URL_LEN: usize = 8192;

/// The most dial threads a pool runs, whatever `max_concurrent_dials` says.
pub const POOL_MAX_CONCURRENT_DIALS: usize = 1024;

/// The largest `max_redirects` pool_cluster_options_t accepts.
pub const POOL_CLUSTER_MAX_REDIRECTS: u32 = 100;

/// The deepest nesting of aggregate replies (arrays in arrays ...) a reply may have.
pub const POOL_MAX_REPLY_DEPTH: usize = 512;

// The header's constants are literals (cbindgen copies an expression, and the core's names
// are not in the header); these tie them to their sources so neither can drift.
const _: () = {
    assert!(POOL_MAX_URL_LEN == crate::redis::url::MAX_URL_LEN);
    assert!(POOL_MAX_CONCURRENT_DIALS == crate::pool::MAX_CONCURRENT_DIALS);
    assert!(POOL_CLUSTER_MAX_REDIRECTS == crate::cluster::MAX_REDIRECTS_LIMIT);
    assert!(POOL_MAX_REPLY_DEPTH == crate::redis::resp::MAX_DEPTH);
};
