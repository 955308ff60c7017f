//! Gives the shared library a SONAME so that programs linked against it record
//! `libredispool.so.0` and keep working across compatible upgrades.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libredispool.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
