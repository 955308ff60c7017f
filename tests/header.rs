//! The committed include/redispool.h must be what cbindgen generates from src/ffi today,
//! every identifier it defines must carry the library's prefix, and its version macros must
//! be Cargo.toml's version. `REDISPOOL_BLESS=1 cargo test --test header` rewrites it.

use std::path::Path;

/// What an includer may find defined by the header: everything else is the caller's.
const PREFIXES: [&str; 3] = ["pool_", "POOL_", "REDISPOOL_"];

/// The version macros, from Cargo.toml (hiredis has the same four).
fn version_macros() -> String {
    format!(
        "\n// The version of this header (pool_version() gives the loaded library's).\n\
         #define REDISPOOL_VERSION_MAJOR {}\n\
         #define REDISPOOL_VERSION_MINOR {}\n\
         #define REDISPOOL_VERSION_PATCH {}\n\
         #define REDISPOOL_VERSION \"{}\"",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION"),
    )
}

fn generate(root: &Path) -> Vec<u8> {
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(version_macros());
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut generated);
    generated
}

fn committed_header() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/redispool.h");
    std::fs::read_to_string(path).expect("read include/redispool.h")
}

#[test]
fn header_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = generate(root);
    let path = root.join("include/redispool.h");
    if std::env::var_os("REDISPOOL_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write header");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/redispool.h is stale: run `REDISPOOL_BLESS=1 cargo test --test header` and commit it"
    );
}

#[test]
fn every_identifier_is_prefixed() {
    let header = committed_header();
    let ids = defined_identifiers(&header);
    // The scanner must see the header's kinds of definitions at all, or "nothing unprefixed"
    // would mean nothing.
    for expected in [
        ("macro", "POOL_ERR_INVALID_ARG"),
        ("macro", "REDISPOOL_H"),
        ("struct", "pool_options"),
        ("typedef", "pool_options_t"),
        ("typedef", "pool_dial_fn"),
        ("function", "pool_new"),
        ("function", "pool_version"),
    ] {
        assert!(
            ids.iter().any(|(k, n)| (*k, n.as_str()) == expected),
            "the scanner missed {expected:?}; it found {ids:?}"
        );
    }
    let bad: Vec<_> = ids.iter().filter(|(_, name)| !prefixed(name)).collect();
    assert!(
        bad.is_empty(),
        "include/redispool.h defines identifiers without a pool_/POOL_/REDISPOOL_ prefix \
         (they land in every includer's namespace): {bad:?}. Keep core constants out with \
         [export] exclude in cbindgen.toml and publish a POOL_ twin in src/ffi/limits.rs"
    );
}

#[test]
fn version_macros_are_cargo_version() {
    let header = committed_header();
    let cargo = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("read Cargo.toml");
    let version = cargo_version(&cargo);
    let parts: Vec<&str> = version.split(['.', '-', '+']).collect();
    for (name, want) in [
        ("REDISPOOL_VERSION_MAJOR", parts[0].to_string()),
        ("REDISPOOL_VERSION_MINOR", parts[1].to_string()),
        ("REDISPOOL_VERSION_PATCH", parts[2].to_string()),
        ("REDISPOOL_VERSION", format!("\"{version}\"")),
    ] {
        assert_eq!(
            macro_value(&header, name).as_deref(),
            Some(want.as_str()),
            "{name} in include/redispool.h is not Cargo.toml's version {version}: run \
             `REDISPOOL_BLESS=1 cargo test --test header`"
        );
    }
}

/// The checker itself: each kind of definition without the prefix is caught.
#[test]
fn scanner_catches_each_kind_of_unprefixed_identifier() {
    let cases = [
        ("#define SLOTS 16384\n", "SLOTS"),
        ("#define MAX_AGGREGATE_LEN (1 << 32)\n", "MAX_AGGREGATE_LEN"),
        ("#  define  FOO(x) (x)\n", "FOO"),
        ("typedef int32_t status_t;\n", "status_t"),
        (
            "typedef int (*dial_fn)(void *userdata, int *fd_out);\n",
            "dial_fn",
        ),
        ("struct conn;\n", "conn"),
        ("struct options {\n  int32_t pool_size;\n};\n", "options"),
        (
            "typedef struct stats {\n  uint64_t hits;\n} pool_stats_t;\n",
            "stats",
        ),
        ("enum color {\n  POOL_RED,\n  GREEN = 2,\n};\n", "color"),
        (
            "enum pool_color {\n  POOL_RED,\n  GREEN = 2,\n};\n",
            "GREEN",
        ),
        ("typedef enum {\n  POOL_A = 1 << 2,\n  B,\n} pool_e;\n", "B"),
        ("union value {\n  int64_t i;\n};\n", "value"),
        ("int get(pool_t *pool, pool_conn_t **conn_out);\n", "get"),
        ("const char *version(void);\n", "version"),
        ("extern const int32_t pool_x, limit;\n", "limit"),
        (
            "#ifdef __cplusplus\nextern \"C\" {\n#endif\nvoid pool_f(void);\nvoid g(int a);\n\
             #ifdef __cplusplus\n}  // extern \"C\"\n#endif\n",
            "g",
        ),
    ];
    for (text, bad) in cases {
        let ids = defined_identifiers(text);
        let unprefixed: Vec<_> = ids.iter().filter(|(_, n)| !prefixed(n)).collect();
        assert!(
            unprefixed.iter().any(|(_, n)| n == bad),
            "{bad} not caught in {text:?}: found {ids:?}"
        );
    }
    // Members, parameters and comments are not the header's identifiers.
    let clean = "// SLOTS is not defined here\n/* nor MAX_DEPTH */\n\
                 struct pool_options {\n  int32_t pool_size;\n  const char *addr;\n};\n\
                 typedef int (*pool_dial_fn)(void *userdata, int64_t timeout_ms, int *fd_out);\n\
                 pool_status_t pool_get(pool_t *pool, pool_conn_t **conn_out);\n";
    let ids = defined_identifiers(clean);
    assert!(ids.iter().all(|(_, n)| prefixed(n)), "{ids:?}");
    assert_eq!(ids.len(), 3, "{ids:?}");
}

fn prefixed(name: &str) -> bool {
    // `struct pool` (pool_t's tag) is the API contract's (API.md) and is the prefix itself.
    name == "pool" || PREFIXES.iter().any(|p| name.starts_with(p))
}

fn cargo_version(cargo: &str) -> String {
    let mut in_package = false;
    for line in cargo.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(rest) = line.strip_prefix("version") {
            let value = rest.trim_start().strip_prefix('=').expect("version = ...");
            return value.trim().trim_matches('"').to_string();
        }
    }
    panic!("no [package] version in Cargo.toml");
}

fn macro_value(header: &str, name: &str) -> Option<String> {
    header.lines().find_map(|line| {
        let rest = line
            .trim()
            .strip_prefix('#')?
            .trim_start()
            .strip_prefix("define")?;
        let mut it = rest.trim_start().splitn(2, char::is_whitespace);
        (it.next()? == name).then(|| it.next().unwrap_or("").trim().to_string())
    })
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
            out.push(' ');
        } else if rest.starts_with('"') {
            let end = rest[1..].find('"').map_or(rest.len(), |i| i + 2);
            out.push_str("\"\"");
            rest = &rest[end..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn identifiers(text: &str) -> Vec<&str> {
    text.split(|c: char| !is_ident_char(c))
        .filter(|w| !w.is_empty() && !w.starts_with(|c: char| c.is_ascii_digit()))
        .collect()
}

/// Every name the header puts into an includer's namespace, with its kind: macros, tags of
/// structs/unions/enums, typedef names, enumerators, functions and variables. A small C
/// declaration scanner, enough for what cbindgen writes (and what a hand edit might add).
fn defined_identifiers(header: &str) -> Vec<(&'static str, String)> {
    let mut ids = Vec::new();
    let text = strip_comments(header);
    let mut code = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(directive) = t.strip_prefix('#') {
            let directive = directive.trim_start();
            if let Some(rest) = directive.strip_prefix("define") {
                let name: String = rest
                    .trim_start()
                    .chars()
                    .take_while(|&c| is_ident_char(c))
                    .collect();
                ids.push(("macro", name));
            }
            continue;
        }
        // C++ linkage braces are not a scope of the header's own.
        if t.starts_with("extern \"\" {") || t.starts_with("extern \"\"{") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    // Drop the closing brace of the extern "C" block: the only '}' with no '{' before it.
    let mut depth = 0i32;
    let mut balanced = String::with_capacity(code.len());
    for c in code.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => continue,
            '}' => depth -= 1,
            _ => {}
        }
        balanced.push(c);
    }
    for statement in top_level_statements(&balanced) {
        declaration_names(&statement, &mut ids);
    }
    ids
}

/// Splits at the ';' that are outside braces and parentheses.
fn top_level_statements(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    for c in code.chars() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth -= 1,
            ';' if depth == 0 => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

fn declaration_names(statement: &str, ids: &mut Vec<(&'static str, String)>) {
    let s = statement.trim();
    // Tags (a tag mentioned anywhere, even in a member or parameter, is declared by it), and
    // the enumerators of an enum body.
    let toks = tokens(s);
    for (i, w) in toks.iter().enumerate() {
        let kind = match *w {
            "struct" => "struct",
            "union" => "union",
            "enum" => "enum",
            _ => continue,
        };
        if let Some(tag) = toks
            .get(i + 1)
            .filter(|t| t.starts_with(is_ident_char) && !is_keyword(t))
        {
            ids.push((kind, tag.to_string()));
        }
    }
    let (head, tail) = match (s.find('{'), s.rfind('}')) {
        (Some(open), Some(close)) if open < close => {
            if s[..open].split_whitespace().any(|w| w == "enum") {
                for item in s[open + 1..close].split(',') {
                    if let Some(name) = identifiers(item).first() {
                        ids.push(("enumerator", name.to_string()));
                    }
                }
            }
            (&s[..open], &s[close + 1..])
        }
        _ => (s, ""),
    };
    let typedef = head.split_whitespace().next() == Some("typedef");
    if !tail.trim().is_empty() {
        // `typedef struct x { ... } name;` or `struct x { ... } var;`
        for part in tail.split(',') {
            if let Some(name) = identifiers(part).last() {
                ids.push((
                    if typedef { "typedef" } else { "variable" },
                    name.to_string(),
                ));
            }
        }
        return;
    }
    if !tail.is_empty() || s.contains('{') {
        return; // a struct/union/enum definition alone: its tag is counted above
    }
    if let Some(open) = s.find('(') {
        let before = &s[..open];
        let pointer = s[open + 1..].trim_start().starts_with('*');
        if !pointer && before.trim_end().ends_with(is_ident_char) {
            // A function: the identifier just before the first '('.
            if let Some(name) = identifiers(before).last() {
                ids.push((
                    if typedef { "typedef" } else { "function" },
                    name.to_string(),
                ));
            }
        } else if let Some(name) = s[open + 1..]
            .split(')')
            .next()
            .and_then(|inner| identifiers(inner).last().map(|n| n.to_string()))
        {
            // `typedef int (*name)(...)`: a function pointer type or variable.
            ids.push((if typedef { "typedef" } else { "variable" }, name));
        }
        return;
    }
    let words = identifiers(s);
    if words.len() >= 2 && !(words.len() == 2 && matches!(words[0], "struct" | "union" | "enum")) {
        // `typedef a b;`, `extern const int32_t x, y;`
        for part in s.split(',') {
            if let Some(name) = identifiers(part).last() {
                ids.push((
                    if typedef { "typedef" } else { "variable" },
                    name.to_string(),
                ));
            }
        }
    }
}

/// Identifiers and single punctuation characters.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_ident_char(c) {
            start.get_or_insert(i);
            continue;
        }
        if let Some(st) = start.take() {
            out.push(&text[st..i]);
        }
        if !c.is_whitespace() {
            out.push(&text[i..i + c.len_utf8()]);
        }
    }
    if let Some(st) = start {
        out.push(&text[st..]);
    }
    out
}

fn is_keyword(w: &str) -> bool {
    matches!(w, "const" | "volatile")
}
