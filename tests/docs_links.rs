//! The front page and the docs hold together: every relative link in README.md,
//! CHANGELOG.md, docs/*.md and the bindings' READMEs points at a file that exists (and, for a
//! `#fragment` into a Markdown file, at one of its headings), and README.md stays a
//! front page of at most `README_MAX_LINES` lines (the rest belongs in docs/).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The most lines README.md may have: a page a newcomer reads in five minutes.
const README_MAX_LINES: usize = 250;

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, CHANGELOG.md, docs/*.md and bindings/*/README.md.
fn markdown_files() -> Vec<PathBuf> {
    let root = repo_dir();
    let mut files = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    let mut more = Vec::new();
    for entry in fs::read_dir(root.join("docs")).expect("read docs/") {
        let path = entry.expect("docs/ entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            more.push(path);
        }
    }
    for entry in fs::read_dir(root.join("bindings")).expect("read bindings/") {
        let readme = entry.expect("bindings/ entry").path().join("README.md");
        if readme.is_file() {
            more.push(readme);
        }
    }
    more.sort();
    files.extend(more);
    files
}

/// The lines of a Markdown text outside fenced code blocks, with inline code
/// spans blanked out, each with its 1-based line number.
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Blank `code` spans: a `](` inside one is not a link, but keep
        // everything outside them (link text may itself be code).
        let mut kept = String::with_capacity(line.len());
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
                kept.push(' ');
            } else if in_code {
                kept.push(' ');
            } else {
                kept.push(c);
            }
        }
        out.push((i + 1, kept));
    }
    out
}

/// Every link target on a prose line: inline `[text](target)` and
/// reference definitions `[label]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        // `[text](target "title")`: the target is the first word.
        let target = after[..end].split_whitespace().next().unwrap_or("");
        targets.push(target.trim_matches(|c| c == '<' || c == '>').to_string());
        rest = &after[end..];
    }
    let trimmed = line.trim_start();
    if trimmed.starts_with('[')
        && let Some(close) = trimmed.find("]:")
        && let Some(target) = trimmed[close + 2..].split_whitespace().next()
    {
        targets.push(target.to_string());
    }
    targets
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and
/// `_` dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The title of an ATX heading line (`## Title`), or None: one to six `#`
/// and a space (`#3575` at the start of a line is text).
fn heading_title(line: &str) -> Option<&str> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    let rest = &line[hashes..];
    ((1..=6).contains(&hashes) && rest.starts_with(' ')).then(|| rest.trim())
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors(path: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut fenced = false;
    let mut set = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && let Some(title) = heading_title(line) {
            set.insert(slug(&title.replace('`', "")));
        }
    }
    set
}

/// The broken links of one file, as "file:line: target (why)".
fn broken_links(file: &Path) -> Vec<String> {
    let root = repo_dir();
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let shown = file
        .strip_prefix(&root)
        .unwrap_or(file)
        .display()
        .to_string();
    let dir = file.parent().expect("a file has a parent");
    let mut broken = Vec::new();
    for (n, line) in prose_lines(&text) {
        for target in link_targets(&line) {
            if target.is_empty() || is_external(&target) {
                continue;
            }
            let (path_part, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let linked = if path_part.is_empty() {
                file.to_path_buf()
            } else {
                dir.join(path_part)
            };
            if !linked.exists() {
                broken.push(format!("{shown}:{n}: {target} (no such file)"));
                continue;
            }
            if let Some(fragment) = fragment
                && linked.extension().is_some_and(|e| e == "md")
                && !anchors(&linked).contains(fragment)
            {
                broken.push(format!("{shown}:{n}: {target} (no heading #{fragment})"));
            }
        }
    }
    broken
}

#[test]
fn relative_links_point_at_existing_files() {
    let files = markdown_files();
    assert!(
        files.len() > 3,
        "found only {files:?}: the docs/ folder is missing?"
    );
    let broken: Vec<String> = files.iter().flat_map(|f| broken_links(f)).collect();
    assert!(
        broken.is_empty(),
        "broken links in the docs:\n{}",
        broken.join("\n")
    );
}

#[test]
fn readme_is_a_front_page() {
    let path = repo_dir().join("README.md");
    let text = fs::read_to_string(&path).expect("read README.md");
    let lines = text.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: it is a front page; \
         move the details into a docs/<topic>.md and link it"
    );
}

#[test]
fn link_parsing_finds_what_it_must() {
    // The checker itself: a broken link in prose is seen, one in code is not.
    let line = "see [`a`](docs/a.md#x) and [b](<b.md> \"t\") or [c](https://e.org/c)";
    assert_eq!(
        link_targets(line),
        ["docs/a.md#x", "b.md", "https://e.org/c"]
    );
    assert_eq!(link_targets("[ref]: ../x.md"), ["../x.md"]);
    let prose = prose_lines("a\n```c\nx[0](y)\n```\nuse `f[0](1)` and [z](z.md)\n");
    let found: Vec<String> = prose.iter().flat_map(|(_, l)| link_targets(l)).collect();
    assert_eq!(found, ["z.md"]);
    assert_eq!(
        slug("Against go-redis's own pool"),
        "against-go-rediss-own-pool"
    );
    assert_eq!(slug("C++"), "c");
    assert_eq!(heading_title("## Status codes"), Some("Status codes"));
    assert_eq!(heading_title("#3575)."), None);
}
