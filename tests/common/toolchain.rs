//! Whether a binding's toolchain is on the machine (tests/python_binding.rs,
//! tests/ruby_binding.rs): a binding test skips with a note when it is not, or fails
//! when `REDISPOOL_REQUIRE_BINDINGS` is set (scripts/test.sh and CI set it and install
//! the toolchains).

use std::env;
use std::process::{Command, Stdio};

/// Runs `program args` as a probe: None when it exits 0, else why it could not run
/// (its stderr included).
pub fn probe(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let shown = std::iter::once(program.to_string())
        .chain(args.iter().map(|a| {
            if a.contains(' ') {
                format!("\"{a}\"")
            } else {
                a.to_string()
            }
        }))
        .collect::<Vec<_>>()
        .join(" ");
    match out {
        Err(e) => Some(format!("cannot run `{program}`: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// True when `missing` (the first failed probe of `test`'s toolchain) is None; false
/// after a note on stderr when the test must be skipped; panics when it is not None
/// but REDISPOOL_REQUIRE_BINDINGS is set. `binding` names it in the panic ("the
/// Python binding"), `packages` are the Debian packages that install the toolchain.
pub fn binding_ready(test: &str, binding: &str, packages: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    if env::var_os("REDISPOOL_REQUIRE_BINDINGS").is_some() {
        panic!(
            "REDISPOOL_REQUIRE_BINDINGS is set but {binding} cannot be tested: {why}. \
             Install {packages} (apt), or run ./scripts/test.sh"
        );
    }
    eprintln!(
        "SKIPPED {test}: {why}. Install {packages} to run it \
         (set REDISPOOL_REQUIRE_BINDINGS=1 to make this a failure)"
    );
    false
}
