//! Redaction of user text in URL error messages: clipped, escaped, and never the password
//! (as written or percent-decoded).

use super::percent_decode;

/// Quoted user text is clipped to this many bytes, so messages stay well under 256 bytes.
pub(super) const CLIP_BYTES: usize = 64;

pub(super) const REDACTED: &str = "<redacted>";

/// Clips and escapes user text for a message, and withholds any text holding the password
/// (as written and as decoded).
pub(super) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub(super) fn new(raw_password: Option<&str>) -> Self {
        let mut r = Redactor {
            secrets: Vec::new(),
        };
        if let Some(raw) = raw_password {
            r.add(raw);
            if let Some(decoded) = percent_decode(raw) {
                r.add(&decoded);
            }
        }
        r
    }

    pub(super) fn with(mut self, password: Option<&str>) -> Self {
        if let Some(p) = password {
            self.add(p);
        }
        self
    }

    pub(super) fn add(&mut self, secret: &str) {
        if !secret.is_empty() && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
        }
    }

    pub(super) fn leaks(&self, text: &str) -> bool {
        self.secrets.iter().any(|s| text.contains(s.as_str()))
    }

    /// Escaped and clipped to `max` bytes; `None` when it would show the password.
    pub(super) fn clip(&self, s: &str, max: usize) -> Option<String> {
        let out = clip_escaped(s, max);
        // Escaping can spell out a password such as `\n` from text that did not hold it.
        (!self.leaks(s) && !self.leaks(&out)).then_some(out)
    }

    /// Escaped, clipped and in double quotes, as Go's `%q`; or `<redacted>`.
    pub(super) fn quote(&self, s: &str) -> String {
        match self.clip(s, CLIP_BYTES) {
            Some(clipped) => format!("\"{clipped}\""),
            None => REDACTED.to_owned(),
        }
    }
}

pub(super) fn clip_escaped(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.escape_debug() {
        if out.len() + c.len_utf8() > max {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

pub(super) fn quote_clipped(s: &str, max: usize) -> String {
    format!("\"{}\"", clip_escaped(s, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_withheld_as_written_and_as_decoded() {
        let r = Redactor::new(Some("p%40ss")).with(Some("extra"));
        assert_eq!(r.quote("host"), "\"host\"");
        for leaky in ["p%40ss", "xp@ssx", "extra", "a\nextra"] {
            assert!(r.leaks(leaky), "{leaky:?}");
            assert_eq!(r.quote(leaky), REDACTED, "{leaky:?}");
        }
        // Escaping must not spell out a password the text did not hold.
        let r = Redactor::new(Some("\\n"));
        assert_eq!(r.quote("a\nb"), REDACTED);
    }

    #[test]
    fn quoted_text_is_escaped_and_clipped() {
        let r = Redactor::new(None);
        assert_eq!(r.quote("a\"b"), "\"a\\\"b\"");
        let long = "x".repeat(500);
        let q = r.quote(&long);
        assert!(q.len() <= CLIP_BYTES + 6, "{} bytes", q.len());
        assert!(q.ends_with("…\""), "{q}");
        assert_eq!(quote_clipped("abcdef", 3), "\"abc…\"");
    }
}
