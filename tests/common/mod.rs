//! Support shared by the integration tests: a throwaway `redis-server` per test,
//! building the C examples against the freshly built library, and running
//! programs with a timeout so a hang fails the test instead of stalling CI.
//!
//! Each integration test compiles this module on its own and uses only part of
//! it, hence the `dead_code` allowances.
#![allow(dead_code)]

pub mod admin;
pub mod capi;
pub mod cluster;
pub mod peers;
pub mod procfs;
pub mod sentinel;
pub mod tls;
pub mod toolchain;

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The command that installs every test dependency (redis-server, gcc, g++,
/// valgrind) on a fresh machine; named in panics so the fix is one copy-paste away.
pub const README_TEST_COMMAND: &str = "./scripts/test.sh";

/// How long a redis-server may take to answer PING before we give up on it.
const REDIS_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Fresh ports tried when redis-server cannot bind (another process took the
/// port between our probe and its bind).
const REDIS_START_ATTEMPTS: u32 = 5;
/// A generous bound for one C example or compiler run.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root (where `Cargo.toml`, `include/` and `examples-c/` live).
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo profile directory the running test was built into, e.g.
/// `target/debug`: the test binary is `target/debug/deps/<test>-<hash>`.
/// Its `deps/` holds the `libredispool.so` and `libredispool.a` under test.
pub fn target_dir() -> PathBuf {
    let exe = env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()))
        .to_path_buf()
}

/// Where compiled C programs and their logs go: `target/<profile>/c-tests/`.
pub fn c_tests_dir() -> PathBuf {
    let dir = target_dir().join("c-tests");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A name no other test in this process (or another process) is using.
fn unique_name(stem: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{stem}.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------
// redis-server
// ---------------------------------------------------------------------------

/// A redis-server child process on a free loopback port, killed on drop. Its
/// log is kept under `target/<profile>/c-tests/redis-logs/` when the test fails.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    log: PathBuf,
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a plain, persistence-free redis-server.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts redis-server with `extra_args` appended to the command line
    /// (e.g. `["--requirepass", "secret"]`). Retries on a fresh port when the
    /// chosen one was taken in the meantime.
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        RedisServer::start_making_args(|| extra_args.iter().map(|a| a.to_string()).collect())
    }

    /// As `start_with`, with the extra arguments made anew by `make_args` for each
    /// attempt, so that a port of their own (a TLS port from `free_port`) is chosen
    /// afresh too when a race lost it: redis-server exits when it cannot bind one.
    pub fn start_making_args(mut make_args: impl FnMut() -> Vec<String>) -> RedisServer {
        let program = env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let logs = c_tests_dir().join("redis-logs");
        fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("create {}: {e}", logs.display()));

        let mut failures = Vec::new();
        for _ in 0..REDIS_START_ATTEMPTS {
            let port = free_port();
            let log = logs.join(unique_name(&format!("redis-{port}")) + ".log");
            let extra_args = make_args();
            let args: Vec<&str> = extra_args.iter().map(String::as_str).collect();
            let child = spawn_redis(&program, port, &log, &args);
            let mut server = RedisServer {
                port,
                child,
                log,
                extra_args,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                // Drop kills and reaps it before the next attempt.
                Err(why) => failures.push(format!(
                    "port {port}: {why}\n--- {} ---\n{}",
                    server.log.display(),
                    fs::read_to_string(&server.log).unwrap_or_default()
                )),
            }
        }
        panic!(
            "redis-server did not start after {REDIS_START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// `"127.0.0.1:PORT"`, the form `pool_options_t.addr` takes.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id of the server, e.g. to stop it with a signal.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `--requirepass` it was started with.
    pub fn password(&self) -> Option<&str> {
        let i = self.extra_args.iter().position(|a| a == "--requirepass")?;
        self.extra_args.get(i + 1).map(String::as_str)
    }

    /// Kills the server with SIGKILL and starts a fresh one on the same port (same
    /// arguments, empty dataset, no runtime config such as passwords set later).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let program = env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let owned = self.extra_args.clone();
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        // Generous: a loaded CI box once took over 10 s to get a restarted server going.
        let end = Instant::now() + 3 * REDIS_READY_TIMEOUT;
        loop {
            self.child = spawn_redis(&program, self.port, &self.log, &args);
            match self.wait_ready() {
                Ok(()) => return,
                Err(why) if Instant::now() >= end => panic!(
                    "redis-server did not restart on port {}: {why}\n--- {} ---\n{}",
                    self.port,
                    self.log.display(),
                    fs::read_to_string(&self.log).unwrap_or_default()
                ),
                // The port may linger for a moment after the kill.
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Sends one command on a fresh connection (after `AUTH auth...` when given) and
    /// returns the first line of the reply, e.g. "+OK". For setting a server up.
    pub fn command(&self, auth: &[&str], args: &[&str]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let encode = |args: &[&str]| {
            let mut req = format!("*{}\r\n", args.len());
            for a in args {
                req += &format!("${}\r\n{a}\r\n", a.len());
            }
            req
        };
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        if !auth.is_empty() {
            let mut a = vec!["AUTH"];
            a.extend_from_slice(auth);
            stream.write_all(encode(&a).as_bytes()).expect("write");
            reader.read_line(&mut line).expect("read");
            assert_eq!(line, "+OK\r\n", "AUTH for {args:?}");
            line.clear();
        }
        stream.write_all(encode(args).as_bytes()).expect("write");
        reader.read_line(&mut line).expect("read");
        line.trim_end().to_string()
    }

    /// Polls until this very process answers PING, or fails with the reason.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + REDIS_READY_TIMEOUT;
        let mut last_error = String::from("no attempt made");
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("redis-server exited early with {status}"));
            }
            match ping_and_pid(self.port, self.password()) {
                // Another server may have grabbed the port first and answered for
                // ours (which then fails to bind): only our own pid counts.
                Ok(pid) if pid == self.child.id() => return Ok(()),
                Ok(pid) => last_error = format!("port answered by another redis (pid {pid})"),
                Err(e) => last_error = e.to_string(),
            }
            thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "not ready after {REDIS_READY_TIMEOUT:?}; last error: {last_error}"
        ))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The server's log only matters when the test using it failed.
        if !thread::panicking() {
            let _ = fs::remove_file(&self.log);
        }
    }
}

fn spawn_redis(program: &OsStr, port: u16, log: &Path, extra_args: &[&str]) -> Child {
    let port_arg = port.to_string();
    let log_arg = log.to_str().expect("UTF-8 target path");
    let mut cmd = Command::new(program);
    cmd.args(["--port", &port_arg, "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--logfile", log_arg])
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "redis-server not found ({}): the tests need a real Redis. Run `{README_TEST_COMMAND}` \
             from the repository root (it installs redis-server and the other test \
             dependencies), or set REDIS_SERVER to its path",
            program.to_string_lossy()
        ),
        Err(e) => panic!("cannot start {}: {e}", program.to_string_lossy()),
    }
}

/// A port that was free a moment ago. Redis 7 treats `--port 0` as "no TCP",
/// so the kernel cannot pick for it; the caller must cope with losing a race.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A loopback port nothing answers on, held for as long as the returned socket lives:
/// bound but never listening, so a connect to it is refused and no server another test
/// starts can take it meanwhile (unlike a `free_port`, which may be taken).
pub fn refused_port() -> (socket2::Socket, u16) {
    let held =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    held.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind 127.0.0.1:0");
    let port = held
        .local_addr()
        .expect("local_addr")
        .as_socket()
        .expect("an IP address")
        .port();
    (held, port)
}

/// Sends PING then `INFO server` (after AUTH when the server has a password) and returns
/// the server's `process_id`.
fn ping_and_pid(port: u16, password: Option<&str>) -> io::Result<u32> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    if let Some(pw) = password {
        stream.write_all(format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{pw}\r\n", pw.len()).as_bytes())?;
        reader.read_line(&mut line)?;
        if line != "+OK\r\n" {
            return Err(io::Error::other(format!("AUTH answered {line:?}")));
        }
        line.clear();
    }
    stream.write_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")?;

    reader.read_line(&mut line)?;
    if line != "+PONG\r\n" {
        // "-LOADING ..." while the server starts up, for instance.
        return Err(io::Error::other(format!("PING answered {line:?}")));
    }

    line.clear();
    reader.read_line(&mut line)?;
    let len: usize = line
        .strip_prefix('$')
        .and_then(|n| n.trim_end().parse().ok())
        .ok_or_else(|| io::Error::other(format!("INFO answered {line:?}")))?;
    let mut body = vec![0; len + 2];
    reader.read_exact(&mut body)?;
    let _ = stream.shutdown(Shutdown::Both);

    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| io::Error::other("INFO server has no process_id"))
}

// ---------------------------------------------------------------------------
// Building C and C++ programs against the library
// ---------------------------------------------------------------------------

/// How a C program is linked against redispool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// `-lredispool` against `libredispool.so`, found at run time through an rpath.
    Shared,
    /// `libredispool.a` plus the system libraries the Rust standard library needs.
    Static,
}

/// What a Rust staticlib needs from the system on Linux/glibc.
pub const STATIC_NATIVE_LIBS: &[&str] = &[
    "-lpthread",
    "-ldl",
    "-lm",
    "-lrt",
    "-lutil",
    "-lgcc_s",
    "-lc",
];

const WARNINGS: &[&str] = &["-Wall", "-Wextra", "-Werror", "-pedantic", "-g"];

/// Compiles `sources` (paths relative to the repository root, or absolute) as
/// C11 into `target/<profile>/c-tests/<name>` and returns the executable's path.
pub fn build_c(name: &str, sources: &[&str], link: Link, extra_flags: &[&str]) -> PathBuf {
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    build(&cc, "-std=c11", name, sources, link, extra_flags)
}

/// As [`build_c`], for C++17 sources.
pub fn build_cxx(name: &str, sources: &[&str], link: Link, extra_flags: &[&str]) -> PathBuf {
    let cxx = env::var("CXX").unwrap_or_else(|_| "c++".into());
    build(&cxx, "-std=c++17", name, sources, link, extra_flags)
}

fn build(
    compiler: &str,
    std_flag: &str,
    name: &str,
    sources: &[&str],
    link: Link,
    extra_flags: &[&str],
) -> PathBuf {
    let repo = repo_dir();
    let header = repo.join("include").join("redispool.h");
    assert!(
        header.is_file(),
        "{} is missing: it is generated by cbindgen and committed",
        header.display()
    );
    let out = c_tests_dir().join(name);

    let mut cmd = Command::new(compiler);
    cmd.arg(std_flag)
        .args(WARNINGS)
        .arg(format!("-I{}", repo.join("include").display()))
        .args(extra_flags)
        .arg("-o")
        .arg(&out)
        .args(sources.iter().map(|s| repo.join(s)));
    match link {
        Link::Shared => {
            let lib_dir = shared_lib_dir();
            cmd.arg(format!("-L{}", lib_dir.display()))
                .arg("-lredispool")
                .arg(format!("-Wl,-rpath,{}", lib_dir.display()));
        }
        Link::Static => {
            cmd.arg(library("libredispool.a")).args(STATIC_NATIVE_LIBS);
        }
    }

    let output = run_command(&mut cmd, RUN_TIMEOUT);
    if !output.status.success() {
        panic!(
            "compiling {name} failed ({}): {cmd:?}\n--- stderr ---\n{}--- stdout ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    out
}

/// The library file cargo built for this test run.
///
/// `cargo test` compiles the crate once with all its crate types into
/// `target/<profile>/deps/`, but copies the cdylib and staticlib up to
/// `target/<profile>/` only on `cargo build`; the copy there may be missing or
/// older than the code under test, so `deps/` comes first.
fn library(file: &str) -> PathBuf {
    let profile = target_dir();
    [profile.join("deps").join(file), profile.join(file)]
        .into_iter()
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{file} not found in {}/deps or {0}: build the crate first (cargo test)",
                profile.display()
            )
        })
}

/// A directory holding `libredispool.so` under both its link name and its
/// SONAME (`libredispool.so.<major>`), as an installed library would be.
///
/// The linker records the SONAME as the program's dependency, but cargo only
/// writes `libredispool.so`; without the second name the dynamic loader would
/// not find the library. Both are symlinks to cargo's output, so they never go stale.
pub fn shared_lib_dir() -> PathBuf {
    let so = library("libredispool.so");
    let dir = c_tests_dir().join("lib");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let soname = format!("libredispool.so.{}", env!("CARGO_PKG_VERSION_MAJOR"));
    for link_name in ["libredispool.so", soname.as_str()] {
        // Tests run in parallel: make the link under a private name, then rename
        // it into place, which replaces any existing link atomically.
        let tmp = dir.join(unique_name(link_name));
        std::os::unix::fs::symlink(&so, &tmp)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", tmp.display()));
        fs::rename(&tmp, dir.join(link_name))
            .unwrap_or_else(|e| panic!("rename {}: {e}", tmp.display()));
    }
    dir
}

// ---------------------------------------------------------------------------
// Running programs
// ---------------------------------------------------------------------------

/// Runs `path` with `args` and extra environment `envs`, capturing its output.
/// Kills it and panics with what it printed if it has not exited after `timeout`.
pub fn run<P: AsRef<OsStr>>(
    path: P,
    args: &[&str],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> Output {
    let mut cmd = Command::new(path);
    cmd.args(args).envs(envs.iter().copied());
    run_command(&mut cmd, timeout)
}

/// Runs `cmd` to completion (stdin closed, stdout/stderr captured) within `timeout`.
pub fn run_command(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    // Drain both pipes on their own threads so a chatty child never blocks on a
    // full pipe while we wait for it.
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    if status.is_none() {
        // Killing it closes its pipes, which lets the readers finish.
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{cmd:?} did not exit within {timeout:?} and was killed\n--- stdout ---\n{}--- stderr ---\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

fn drain<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Formats a finished program's status and output for an assertion message.
/// A program's stdout as text.
pub fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn assert_success(output: &Output) {
    assert!(output.status.success(), "{}", describe(output));
}

pub fn assert_stdout_has(output: &Output, needle: &str) {
    assert!(
        stdout_of(output).contains(needle),
        "expected {needle:?} on stdout\n{}",
        describe(output)
    );
}

pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether `valgrind` can be run.
pub fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `exe args...` under valgrind memcheck: exit status 99 on any memory error or
/// definite leak, otherwise the program's own.
pub fn run_under_memcheck(
    exe: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> Output {
    let exe = exe.to_str().expect("UTF-8 path");
    // ring's AES-GCM assembly is opaque to memcheck's definedness tracking: see the file.
    let supp = format!(
        "--suppressions={}",
        repo_dir().join("tests/valgrind/ring.supp").display()
    );
    let mut argv = vec![
        "--tool=memcheck",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        &supp,
        exe,
    ];
    argv.extend_from_slice(args);
    run("valgrind", &argv, envs, timeout)
}

/// Asserts a C test program (tests/c/check.h) passed every check and really ran all of
/// them: it exited 0, printed every `sections` line in order, and an "OK: N checks
/// passed" line with N at least `min_checks`.
pub fn assert_all_checks_passed(output: &Output, sections: &[&str], min_checks: u64) {
    assert!(
        output.status.success(),
        "C ABI test program failed\n{}",
        describe(output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut from = 0;
    for section in sections {
        match stdout[from..].find(section) {
            Some(i) => from += i + section.len(),
            None => panic!(
                "section {section:?} missing or out of order\n{}",
                describe(output)
            ),
        }
    }
    let passed: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("OK: ")?.strip_suffix(" checks passed"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no \"OK: N checks passed\" line\n{}", describe(output)));
    assert!(
        passed >= min_checks,
        "only {passed} checks ran, expected at least {min_checks}\n{}",
        describe(output)
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("FAILED"),
        "{}",
        describe(output)
    );
}
