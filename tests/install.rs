//! Installing and consuming the library as a user would: `scripts/install.sh`
//! into a prefix, then C programs built with nothing but `pkg-config`, and a
//! CMake project with nothing but `find_package(redispool CONFIG)`; the
//! installed shared library's exported symbols (versioned, as the version
//! script says) against the header; stripping and the separate debug info; and
//! the C++17 wrapper `include/redispool.hpp` against a real redis-server.

mod common;

use common::{
    Link, RUN_TIMEOUT, RedisServer, assert_stdout_has, assert_success, build_cxx, describe,
    repo_dir, run, run_command, shared_lib_dir, stdout_of, target_dir,
};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

/// `scripts/install.sh` runs `cargo build --release`, which compiles the whole
/// crate from scratch on a clean checkout.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(20 * 60);

const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// A directory under `target/` for one install, removed when the test passes
/// (kept for a look when it fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let root = target_dir()
            .parent()
            .expect("target/<profile> has a parent")
            .join(format!("install-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
        Scratch(root)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `scripts/install.sh prefix` with extra environment `envs` and checks it succeeded.
fn install(prefix: &str, envs: &[(&str, &str)]) -> Output {
    let script = repo_dir().join("scripts").join("install.sh");
    let mut cmd = Command::new(&script);
    // A DESTDIR from the caller's environment must not redirect the install.
    cmd.arg(prefix)
        .env_remove("DESTDIR")
        .envs(envs.iter().copied());
    let output = run_command(&mut cmd, INSTALL_TIMEOUT);
    assert_success(&output);
    output
}

/// `pkg-config args... redispool` seeing only `<lib>/pkgconfig`; its words.
fn pkg_config(lib: &Path, args: &[&str]) -> Vec<String> {
    let pc_path = lib.join("pkgconfig");
    let mut argv = args.to_vec();
    argv.push("redispool");
    let output = run(
        "pkg-config",
        &argv,
        &[("PKG_CONFIG_PATH", path_str(&pc_path))],
        RUN_TIMEOUT,
    );
    assert_success(&output);
    stdout_of(&output)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The SONAME recorded in a shared library, from `readelf -d`.
fn soname(so: &Path) -> String {
    let output = run("readelf", &["-d", path_str(so)], &[], RUN_TIMEOUT);
    assert_success(&output);
    let stdout = stdout_of(&output);
    stdout
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
        .unwrap_or_else(|| panic!("{} has no SONAME:\n{stdout}", so.display()))
}

/// The libraries a program needs (DT_NEEDED), from `readelf -d`.
fn needed(exe: &Path) -> Vec<String> {
    let output = run("readelf", &["-d", path_str(exe)], &[], RUN_TIMEOUT);
    assert_success(&output);
    stdout_of(&output)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
        .collect()
}

/// Compiles `examples-c/basic.c` with `cc`, the given flags after the source.
fn compile_basic(out: &Path, flags: &[String]) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(cc);
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(repo_dir().join("examples-c").join("basic.c"))
        .args(flags)
        .arg("-o")
        .arg(out);
    let output = run_command(&mut cmd, RUN_TIMEOUT);
    assert!(output.status.success(), "{cmd:?}\n{}", describe(&output));
}

fn assert_basic_ran(output: &Output) {
    assert_success(output);
    assert_stdout_has(output, "hello from redispool\n");
    assert_stdout_has(output, ": hit\n");
}

/// Checks the files, links and pkg-config file of an install of `prefix` whose
/// files were written under `root` (`root` = `DESTDIR` + `prefix`).
fn check_installed_tree(root: &Path, prefix: &str) {
    let lib = root.join("lib");
    let include = root.join("include");
    let real = format!("libredispool.so.{VERSION}");
    let major = format!("libredispool.so.{MAJOR}");

    let real_meta = fs::symlink_metadata(lib.join(&real))
        .unwrap_or_else(|e| panic!("{}: {e}", lib.join(&real).display()));
    assert!(
        real_meta.file_type().is_file(),
        "{real} must be a regular file"
    );
    for (link, target) in [(major.as_str(), real.as_str()), ("libredispool.so", &major)] {
        let got = fs::read_link(lib.join(link))
            .unwrap_or_else(|e| panic!("{link} must be a symlink: {e}"));
        assert_eq!(got, Path::new(target), "{link} points to the wrong file");
    }
    assert_eq!(soname(&lib.join(&real)), major);
    assert!(fs::symlink_metadata(lib.join("libredispool.a")).is_ok_and(|m| m.is_file()));
    check_stripped_with_debug_info(&lib);
    for file in ["redispoolConfig.cmake", "redispoolConfigVersion.cmake"] {
        let path = lib.join("cmake").join("redispool").join(file);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !text.contains('@'),
            "{file} has an unfilled @PLACEHOLDER@:\n{text}"
        );
        assert!(
            text.contains(VERSION),
            "{file} does not name version {VERSION}"
        );
    }
    for doc in ["LICENSE", "CHANGELOG.md"] {
        let installed = fs::read(root.join("share/doc/redispool").join(doc))
            .unwrap_or_else(|e| panic!("share/doc/redispool/{doc}: {e}"));
        assert!(installed == fs::read(repo_dir().join(doc)).expect("source doc"));
    }
    for header in ["redispool.h", "redispool.hpp"] {
        let installed = fs::read(include.join(header))
            .unwrap_or_else(|e| panic!("{}: {e}", include.join(header).display()));
        let source = fs::read(repo_dir().join("include").join(header)).expect("source header");
        assert!(
            installed == source,
            "installed {header} differs from include/{header}"
        );
    }

    let pc_file = lib.join("pkgconfig").join("redispool.pc");
    let pc = fs::read_to_string(&pc_file).unwrap_or_else(|e| panic!("{}: {e}", pc_file.display()));
    for line in [
        format!("prefix={prefix}"),
        "Name: redispool".to_string(),
        format!("Version: {VERSION}"),
        "Cflags: -I${includedir}".to_string(),
        "Libs: -L${libdir} -lredispool".to_string(),
    ] {
        assert!(
            pc.lines().any(|l| l == line),
            "no `{line}` in redispool.pc:\n{pc}"
        );
    }
    assert!(
        pc.lines()
            .any(|l| l.starts_with("Description: ") && l.len() > 20),
        "redispool.pc has no Description:\n{pc}"
    );
    let private = pc
        .lines()
        .find_map(|l| l.strip_prefix("Libs.private:"))
        .unwrap_or_else(|| panic!("redispool.pc has no Libs.private:\n{pc}"));
    let words: Vec<&str> = private.split_whitespace().collect();
    assert!(
        !words.is_empty() && words.iter().all(|w| w.starts_with('-')),
        "Libs.private should list linker flags: {private:?}"
    );
    assert!(words.contains(&"-lc"), "Libs.private: {private:?}");
}

/// The names of a file's ELF sections, from `readelf -S -W` (every member's,
/// for an archive).
fn section_names(file: &Path) -> Vec<String> {
    let output = run("readelf", &["-S", "-W", path_str(file)], &[], RUN_TIMEOUT);
    assert_success(&output);
    stdout_of(&output)
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(']')?;
            rest.split_whitespace().next().map(str::to_string)
        })
        .collect()
}

/// The build id in a file's `.note.gnu.build-id`, from `readelf -n`.
fn build_id(file: &Path) -> Option<String> {
    let output = run("readelf", &["-n", path_str(file)], &[], RUN_TIMEOUT);
    assert_success(&output);
    stdout_of(&output).lines().find_map(|l| {
        l.trim()
            .strip_prefix("Build ID:")
            .map(|id| id.trim().to_string())
    })
}

/// Numbers the scratch directories of section dumps (tests run in parallel).
static DUMPS: AtomicUsize = AtomicUsize::new(0);

/// CRC-32 (IEEE, reflected, as zlib), which `.gnu_debuglink` records of the debug file.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The raw bytes of one section, from `objcopy --dump-section`.
fn section_bytes(file: &Path, section: &str, scratch: &Path) -> Vec<u8> {
    let out = scratch.join(format!("section{}", section.replace('.', "_")));
    let arg = format!("{section}={}", out.display());
    let output = run(
        "objcopy",
        &[
            "--dump-section",
            &arg,
            path_str(file),
            path_str(&scratch.join("objcopy.out")),
        ],
        &[],
        RUN_TIMEOUT,
    );
    assert_success(&output);
    fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()))
}

/// The installed libraries carry no debug info; the shared library's is in
/// `lib/debug/`, named by its `.gnu_debuglink` (with the right CRC) and linked
/// from `lib/debug/.build-id/` under the library's build id.
fn check_stripped_with_debug_info(lib: &Path) {
    let so = lib.join(format!("libredispool.so.{VERSION}"));
    let sections = section_names(&so);
    assert!(
        !sections.iter().any(|s| s.starts_with(".debug_")),
        "installed {} still has debug sections: {sections:?}",
        so.display()
    );
    let so_size = fs::metadata(&so).expect("installed .so").len();
    assert!(
        so_size < 4 << 20,
        "installed .so is {so_size} bytes: not stripped?"
    );

    let debug_name = format!("libredispool.so.{VERSION}.debug");
    let debug = lib.join("debug").join(&debug_name);
    let debug_sections = section_names(&debug);
    assert!(
        debug_sections.iter().any(|s| s == ".debug_info")
            && debug_sections.iter().any(|s| s == ".debug_line"),
        "{} lacks debug info: {debug_sections:?}",
        debug.display()
    );

    // .gnu_debuglink: the file name, NUL, padding to 4 bytes, then its CRC-32.
    let scratch = Scratch::new(&format!("dump-{}", DUMPS.fetch_add(1, Ordering::Relaxed)));
    let link = section_bytes(&so, ".gnu_debuglink", &scratch.0);
    let nul = link
        .iter()
        .position(|&b| b == 0)
        .expect("NUL in .gnu_debuglink");
    assert_eq!(
        std::str::from_utf8(&link[..nul]).expect("UTF-8 name"),
        debug_name
    );
    let crc_at = (nul + 4) & !3;
    let recorded = u32::from_le_bytes(link[crc_at..crc_at + 4].try_into().expect("4 bytes"));
    assert_eq!(
        recorded,
        crc32(&fs::read(&debug).expect("debug file")),
        ".gnu_debuglink's CRC does not match {}",
        debug.display()
    );

    let id = build_id(&so).unwrap_or_else(|| panic!("{} has no build id", so.display()));
    assert_eq!(build_id(&debug).as_deref(), Some(id.as_str()));
    let by_id = lib
        .join("debug/.build-id")
        .join(&id[..2])
        .join(format!("{}.debug", &id[2..]));
    assert_eq!(
        fs::canonicalize(&by_id).unwrap_or_else(|e| panic!("{}: {e}", by_id.display())),
        fs::canonicalize(&debug).expect("debug file")
    );

    let archive = lib.join("libredispool.a");
    let archive_sections = section_names(&archive);
    assert!(
        !archive_sections
            .iter()
            .any(|s| s.starts_with(".debug_") || s == ".llvmbc"),
        "installed libredispool.a keeps debug info or LLVM bitcode"
    );
    let archive_size = fs::metadata(&archive).expect("installed .a").len();
    assert!(
        archive_size < 20 << 20,
        "installed .a is {archive_size} bytes"
    );
}

#[test]
fn install_into_a_prefix_and_build_with_pkg_config() {
    let scratch = Scratch::new("prefix");
    let prefix = scratch.0.join("usr");
    let prefix_str = path_str(&prefix);
    let output = install(prefix_str, &[]);
    assert_stdout_has(&output, &format!("installed redispool {VERSION}"));
    check_installed_tree(&prefix, prefix_str);
    let lib = prefix.join("lib");
    let installed_so = lib.join(format!("libredispool.so.{VERSION}"));
    assert_exports_equal_header(&installed_so);
    assert_exports_versioned(&installed_so);

    // pkg-config sees the version; every path it gives is in the prefix (which
    // itself lies under target/), none elsewhere in the build tree.
    assert_eq!(pkg_config(&lib, &["--modversion"]), [VERSION]);
    let flags = pkg_config(&lib, &["--cflags", "--libs"]);
    let build_tree = path_str(&repo_dir()).to_string();
    assert!(
        flags
            .iter()
            .all(|f| !f.contains(&build_tree) || f.contains(prefix_str)),
        "pkg-config flags point into the build tree: {flags:?}"
    );
    assert!(flags.contains(&format!("-I{}", prefix.join("include").display())));
    assert!(flags.contains(&format!("-L{}", lib.display())));
    assert!(flags.contains(&"-lredispool".to_string()));

    let redis = RedisServer::start();

    // Shared: the program needs libredispool.so.<major>, found in the prefix.
    let shared = scratch.0.join("basic-shared");
    compile_basic(&shared, &flags);
    assert!(
        needed(&shared).contains(&format!("libredispool.so.{MAJOR}")),
        "{:?}",
        needed(&shared)
    );
    let lib_path = [("LD_LIBRARY_PATH", path_str(&lib))];
    let ldd = run("ldd", &[path_str(&shared)], &lib_path, RUN_TIMEOUT);
    assert_success(&ldd);
    let expected = format!(
        "libredispool.so.{MAJOR} => {}",
        lib.join(format!("libredispool.so.{MAJOR}")).display()
    );
    assert_stdout_has(&ldd, &expected);
    assert_basic_ran(&run(&shared, &[&redis.addr()], &lib_path, RUN_TIMEOUT));

    // Static: -lredispool taken from libredispool.a, plus Libs.private.
    let mut static_flags = pkg_config(&lib, &["--cflags"]);
    for flag in pkg_config(&lib, &["--static", "--libs"]) {
        if flag == "-lredispool" {
            static_flags.extend(["-Wl,-Bstatic", "-lredispool", "-Wl,-Bdynamic"].map(String::from));
        } else {
            static_flags.push(flag);
        }
    }
    // Libs.private always ends with the C library.
    assert!(
        static_flags.iter().any(|f| f == "-lc"),
        "--static --libs should add Libs.private: {static_flags:?}"
    );
    // The program binds each function to its version node, not to any pool_get.
    assert_imports_versioned(&shared);

    let static_exe = scratch.0.join("basic-static");
    compile_basic(&static_exe, &static_flags);
    let deps = needed(&static_exe);
    assert!(
        deps.iter().all(|d| !d.starts_with("libredispool")),
        "statically linked program still needs {deps:?}"
    );
    assert_basic_ran(&run(&static_exe, &[&redis.addr()], &[], RUN_TIMEOUT));
}

#[test]
fn install_with_destdir_stages_and_is_idempotent() {
    let scratch = Scratch::new("destdir");
    let destdir = scratch.0.join("stage");
    let destdir_str = path_str(&destdir);
    let prefix = "/opt/redispool-test";
    let root = destdir.join(prefix.trim_start_matches('/'));

    let listing = |dir: &Path| -> BTreeSet<(String, Option<PathBuf>)> {
        let mut all = BTreeSet::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
                let path = entry.expect("dir entry").path();
                let meta = fs::symlink_metadata(&path).expect("metadata");
                if meta.is_dir() {
                    todo.push(path.clone());
                }
                let rel = path
                    .strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string();
                all.insert((rel, fs::read_link(&path).ok()));
            }
        }
        all
    };

    install(prefix, &[("DESTDIR", destdir_str)]);
    // Staged: nothing outside DESTDIR, and the .pc names the final prefix.
    assert!(
        !Path::new(prefix).exists(),
        "{prefix} was written outside DESTDIR"
    );
    check_installed_tree(&root, prefix);
    let first = listing(&destdir);

    // Again: same files, same links, nothing added.
    install(prefix, &[("DESTDIR", destdir_str)]);
    check_installed_tree(&root, prefix);
    assert_eq!(listing(&destdir), first);
}

/// The functions a C header declares: `pool_*` names followed by `(` outside comments.
fn header_functions(header: &str) -> BTreeSet<String> {
    let mut code = String::with_capacity(header.len());
    let mut rest = header;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, tail)| tail);
            code.push(' ');
        } else if rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |i| &rest[i..]);
        } else {
            let c = rest.chars().next().expect("non-empty");
            code.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }

    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    for (start, _) in code.match_indices("pool_") {
        if code[..start].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let tail = &code[start..];
        let end = tail.find(|c: char| !is_ident(c)).unwrap_or(tail.len());
        let name = &tail[..end];
        let valid = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid && tail[end..].trim_start().starts_with('(') {
            names.insert(name.to_string());
        }
    }
    names
}

/// The shared library's defined dynamic symbols: (functions, everything else).
fn exported_symbols(so: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let output = run(
        "nm",
        &["-D", "--defined-only", path_str(so)],
        &[],
        RUN_TIMEOUT,
    );
    assert_success(&output);
    let mut functions = BTreeSet::new();
    let mut others = BTreeSet::new();
    for line in stdout_of(&output).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, name) = match fields.as_slice() {
            [_, kind, name] | [kind, name] => (*kind, *name),
            _ => continue,
        };
        // `name@@VERSION` when a version script names a node.
        let name = name.split('@').next().unwrap_or(name).to_string();
        match kind {
            "T" | "t" | "W" | "w" | "i" => {
                functions.insert(name);
            }
            // Version node names of a version script.
            "A" => {}
            _ => {
                others.insert(format!("{kind} {name}"));
            }
        }
    }
    (functions, others)
}

fn assert_exports_equal_header(so: &Path) {
    let header_path = repo_dir().join("include").join("redispool.h");
    let header = fs::read_to_string(&header_path).expect("read include/redispool.h");
    let declared = header_functions(&header);
    assert!(
        declared.len() > 20 && declared.contains("pool_get") && declared.contains("pool_version"),
        "header parsing found too little: {declared:?}"
    );
    let (exported, others) = exported_symbols(so);
    let missing: Vec<_> = declared.difference(&exported).collect();
    let extra: Vec<_> = exported.difference(&declared).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{}: declared in the header but not exported: {missing:?}; exported but not in \
         the header: {extra:?}",
        so.display()
    );
    assert!(
        others.is_empty(),
        "{} exports data symbols: {others:?}",
        so.display()
    );
}

/// The version node of this release's functions in `src/ffi/redispool.map`.
const VERSION_NODE: &str = "REDISPOOL_0.1";

/// The version script's nodes: (node, the functions it makes global), in order.
fn version_script_nodes() -> Vec<(String, BTreeSet<String>)> {
    let path = repo_dir().join("src").join("ffi").join("redispool.map");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_version_script(&text)
}

fn parse_version_script(text: &str) -> Vec<(String, BTreeSet<String>)> {
    // Drop /* comments */, then read `NODE { global: a; b; local: *; } PARENT;`.
    let mut code = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        rest = rest[start..].split_once("*/").map_or("", |(_, tail)| tail);
    }
    code.push_str(rest);
    let mut nodes = Vec::new();
    let mut body_rest = code.as_str();
    while let Some(open) = body_rest.find('{') {
        let name = body_rest[..open]
            .split([';', '}'])
            .next_back()
            .unwrap_or("")
            .split_whitespace()
            .next_back()
            .unwrap_or_else(|| panic!("a version node without a name:\n{text}"))
            .to_string();
        let close = body_rest[open..].find('}').expect("closing brace") + open;
        let body = &body_rest[open + 1..close];
        let mut global = BTreeSet::new();
        let mut scope = "";
        for item in body.split(';') {
            let mut item = item.trim();
            for label in ["global:", "local:"] {
                if let Some(after) = item.strip_prefix(label) {
                    scope = label;
                    item = after.trim();
                }
            }
            if scope == "global:" && !item.is_empty() {
                global.insert(item.to_string());
            }
        }
        nodes.push((name, global));
        body_rest = &body_rest[close + 1..];
    }
    nodes
}

#[test]
fn version_script_parser_reads_nodes_in_order() {
    let text = "/* pool_fake; */\nREDISPOOL_0.1 {\n  global:\n    pool_a;\n    pool_b;\n  \
                local:\n    *;\n};\nREDISPOOL_0.2 {\n  global: pool_c;\n} REDISPOOL_0.1;\n";
    let nodes = parse_version_script(text);
    let names: Vec<(&str, Vec<&str>)> = nodes
        .iter()
        .map(|(n, g)| (n.as_str(), g.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        names,
        [
            ("REDISPOOL_0.1", vec!["pool_a", "pool_b"]),
            ("REDISPOOL_0.2", vec!["pool_c"])
        ]
    );
}

#[test]
fn version_script_lists_exactly_the_header_functions() {
    let nodes = version_script_nodes();
    assert_eq!(
        nodes.first().map(|(name, _)| name.as_str()),
        Some(VERSION_NODE),
        "the first node of src/ffi/redispool.map"
    );
    let mut listed = BTreeSet::new();
    for (node, names) in &nodes {
        for name in names {
            assert!(
                listed.insert(name.clone()),
                "{name} is listed twice (again in {node})"
            );
        }
    }
    let header = fs::read_to_string(repo_dir().join("include").join("redispool.h"))
        .expect("read include/redispool.h");
    let declared = header_functions(&header);
    let missing: Vec<_> = declared.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&declared).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "src/ffi/redispool.map is out of step with include/redispool.h: add new functions \
         to a new version node (docs/abi.md). Not in the map: {missing:?}; not in the \
         header: {extra:?}"
    );
}

/// The version each of the map's functions belongs to.
fn expected_versions() -> Vec<(String, String)> {
    version_script_nodes()
        .into_iter()
        .flat_map(|(node, names)| names.into_iter().map(move |n| (n, node.clone())))
        .collect()
}

/// Every function the installed library exports is `name@@NODE`, NODE being
/// the version node the map puts it in.
fn assert_exports_versioned(so: &Path) {
    let output = run(
        "nm",
        &["-D", "--defined-only", path_str(so)],
        &[],
        RUN_TIMEOUT,
    );
    assert_success(&output);
    let stdout = stdout_of(&output);
    let mut exported = BTreeSet::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, "A", _] | [_, "A", _, ..] => {}
            [_, _, sym] => {
                exported.insert(sym.to_string());
            }
            _ => {}
        }
    }
    let wanted: BTreeSet<String> = expected_versions()
        .into_iter()
        .map(|(name, node)| format!("{name}@@{node}"))
        .collect();
    let unversioned: Vec<_> = exported.iter().filter(|s| !s.contains("@@")).collect();
    assert!(
        unversioned.is_empty(),
        "{} exports unversioned symbols: {unversioned:?}",
        so.display()
    );
    assert_eq!(exported, wanted, "exports of {}", so.display());

    // readelf agrees: the version definitions are the map's nodes.
    let output = run("readelf", &["-V", "-W", path_str(so)], &[], RUN_TIMEOUT);
    assert_success(&output);
    assert_stdout_has(&output, &format!("Name: {VERSION_NODE}"));
}

/// A program linked against the installed library refers to its functions by
/// version (`pool_get@REDISPOOL_0.1`), so another library's `pool_free` in the
/// same process cannot capture its calls.
fn assert_imports_versioned(exe: &Path) {
    let output = run(
        "nm",
        &["-D", "--undefined-only", path_str(exe)],
        &[],
        RUN_TIMEOUT,
    );
    assert_success(&output);
    let imports: Vec<String> = stdout_of(&output)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .filter(|s| s.starts_with("pool_"))
        .collect();
    assert!(
        !imports.is_empty(),
        "{} imports no pool_ function",
        exe.display()
    );
    let bad: Vec<_> = imports
        .iter()
        .filter(|s| !s.ends_with(&format!("@{VERSION_NODE}")))
        .collect();
    assert!(
        bad.is_empty(),
        "{} imports unversioned or misversioned functions: {bad:?}",
        exe.display()
    );
}

/// Runs `cmake args...` (in `dir`) and returns its output, whatever its status.
fn cmake(args: &[&str]) -> Output {
    run("cmake", args, &[], INSTALL_TIMEOUT)
}

#[test]
fn cmake_project_finds_the_staged_install() {
    // Staged as a package build would stage it: DESTDIR + /usr. The CMake
    // package finds everything from its own place, so it works from the stage.
    let scratch = Scratch::new("cmake");
    let destdir = scratch.0.join("stage");
    install("/usr", &[("DESTDIR", path_str(&destdir))]);
    let root = destdir.join("usr");
    let build = scratch.0.join("build");
    let source = repo_dir().join("tests").join("cmake");
    let generator: &[&str] = if Command::new("ninja").arg("--version").output().is_ok() {
        &["-G", "Ninja"]
    } else {
        &[]
    };
    let prefix_path = format!("-DCMAKE_PREFIX_PATH={}", root.display());

    let mut args = vec!["-S", path_str(&source), "-B", path_str(&build)];
    args.extend_from_slice(generator);
    args.push(&prefix_path);
    let configured = cmake(&args);
    assert_success(&configured);
    assert_stdout_has(&configured, &format!("found redispool {VERSION}"));
    assert_success(&cmake(&["--build", path_str(&build)]));

    let redis = RedisServer::start();
    let shared = build.join("consumer_shared");
    assert!(
        needed(&shared).contains(&format!("libredispool.so.{MAJOR}")),
        "{:?}",
        needed(&shared)
    );
    assert_imports_versioned(&shared);
    // CMake gives the build tree an rpath to the imported library's directory.
    let ldd = run("ldd", &[path_str(&shared)], &[], RUN_TIMEOUT);
    assert_stdout_has(
        &ldd,
        &format!(
            "libredispool.so.{MAJOR} => {}",
            root.join("lib")
                .join(format!("libredispool.so.{MAJOR}"))
                .display()
        ),
    );
    assert_basic_ran(&run(&shared, &[&redis.addr()], &[], RUN_TIMEOUT));

    let static_exe = build.join("consumer_static");
    let deps = needed(&static_exe);
    assert!(
        deps.iter().all(|d| !d.starts_with("libredispool")),
        "the static target's program still needs {deps:?}"
    );
    assert_basic_ran(&run(&static_exe, &[&redis.addr()], &[], RUN_TIMEOUT));

    let cpp = run(
        build.join("consumer_cpp"),
        &[&redis.addr()],
        &[],
        RUN_TIMEOUT,
    );
    assert_success(&cpp);
    assert_stdout_has(&cpp, "GET: from cmake\n");
    assert_stdout_has(&cpp, &format!("version: {VERSION}"));

    // The version file: a later major version, or a newer minor one, is refused.
    for wanted in ["1.0", "0.99"] {
        let build = scratch.0.join(format!("build-{wanted}"));
        let want = format!("-DREDISPOOL_WANTED={wanted}");
        let mut args = vec!["-S", path_str(&source), "-B", path_str(&build)];
        args.extend_from_slice(generator);
        args.push(&prefix_path);
        args.push(&want);
        let refused = cmake(&args);
        assert!(
            !refused.status.success(),
            "find_package(redispool {wanted}) succeeded"
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains(&format!("requested version \"{wanted}\""))
                && stderr.contains(&format!("version: {VERSION}")),
            "find_package(redispool {wanted}) failed for another reason:\n{}",
            describe(&refused)
        );
    }
}

#[test]
fn exported_symbols_equal_the_header_functions() {
    assert_exports_equal_header(&shared_lib_dir().join("libredispool.so"));
}

#[test]
fn header_function_parser_skips_comments_and_types() {
    let header = "// pool_fake(x) in a comment\n/* pool_also_fake (y) */\n\
                  typedef int (*pool_dial_fn)(void *u);\n\
                  pool_status_t pool_get(pool_t *pool,\n    pool_conn_t **conn_out);\n\
                  void pool_free (pool_t *pool);\n";
    let names: Vec<String> = header_functions(header).into_iter().collect();
    assert_eq!(names, ["pool_free", "pool_get"]);
}

fn run_cpp(name: &str, source: &str, flags: &[&str]) -> Output {
    let redis = RedisServer::start();
    let exe = build_cxx(name, &[source], Link::Shared, flags);
    let output = run(&exe, &[&redis.addr()], &[], RUN_TIMEOUT);
    assert_success(&output);
    assert!(
        !stdout_of(&output).contains("FAIL"),
        "{}",
        describe(&output)
    );
    output
}

#[test]
fn cpp_wrapper_against_real_redis() {
    let output = run_cpp("cpp-wrapper", "tests/cpp/wrapper.cpp", &["-pthread"]);
    assert_stdout_has(&output, "checks passed\n");
    // A few of the checks, so that a program that skipped them would not pass.
    for line in [
        "ok   pool.len() == 1 && pool.idle_len() == 1\n",
        "ok   after.removed_conns == st.removed_conns + 1\n",
        "ok   e.has_value() && e->code() == POOL_ERR_IO\n",
        "ok   timeout.has_value() && timeout->code() == POOL_ERR_TIMEOUT\n",
        "ok   e.has_value() && e->code() == POOL_ERR_CANCELED\n",
        "ok   !a && a.id() == 0 && a.fd() == -1 && a.native() == nullptr\n",
        "ok   nil.is_nil() && !fresh.bad()\n",
        "ok   r[2].is_error() && r[3].str() == \"2\"\n",
        "ok   aborted.is_nil() && !conn.bad()\n",
        "ok   gap.has_value() && gap->kind() == POOL_MSG_RESUBSCRIBED && sub.resubscribes() == 1\n",
    ] {
        assert_stdout_has(&output, line);
    }
}

#[test]
fn cpp_wrapper_under_valgrind_has_no_errors_or_definite_leaks() {
    if !common::valgrind_available() {
        eprintln!("valgrind not installed: skipping (./scripts/test.sh installs it)");
        return;
    }
    let redis = RedisServer::start();
    let exe = build_cxx(
        "cpp-wrapper-valgrind",
        &["tests/cpp/wrapper.cpp"],
        Link::Shared,
        &["-pthread"],
    );
    let output = common::run_under_memcheck(&exe, &[&redis.addr()], &[], RUN_TIMEOUT * 2);
    assert_success(&output);
    assert_stdout_has(&output, "checks passed\n");
}

#[test]
fn cpp_wrapper_without_exceptions() {
    let output = run_cpp("cpp-nothrow", "tests/cpp/nothrow.cpp", &["-fno-exceptions"]);
    assert_stdout_has(&output, "all nothrow checks passed\n");
}
