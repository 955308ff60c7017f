//! Go's `time.ParseDuration`, for the duration parameters of a URL (`dial_timeout=1.5s`).

use super::redact::quote_clipped;

pub(super) const NANOS_PER_MILLI: i64 = 1_000_000;

pub(super) const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Why a Go duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DurationError {
    Invalid,
    MissingUnit,
    UnknownUnit(String),
    Overflow,
}

impl DurationError {
    pub(super) fn reason(&self, show_unit: bool) -> String {
        match self {
            DurationError::Invalid => "not a number or a Go duration such as 500ms".to_owned(),
            DurationError::MissingUnit => "missing unit: ns, us, ms, s, m or h".to_owned(),
            DurationError::UnknownUnit(u) if show_unit => {
                format!("unknown unit {}", quote_clipped(u, 16))
            }
            DurationError::UnknownUnit(_) => "unknown unit".to_owned(),
            DurationError::Overflow => "out of range".to_owned(),
        }
    }
}

/// A Go duration unit and its length in nanoseconds.
pub(super) fn unit_nanos(unit: &[u8]) -> Option<u64> {
    Some(match unit {
        b"ns" => 1,
        // "µs" as U+00B5 (micro sign) and as U+03BC (Greek mu), as Go accepts both.
        b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
        b"ms" => 1_000_000,
        b"s" => 1_000_000_000,
        b"m" => 60_000_000_000,
        b"h" => 3_600_000_000_000,
        _ => return None,
    })
}

pub(super) const DURATION_LIMIT: u64 = 1 << 63;

/// Go's `time.ParseDuration`, to signed nanoseconds: `[-+]?` then one or more
/// `<decimal><unit>` ("1h2m3.5s", ".5s", "1.s"); "0" alone needs no unit. Follows Go's overflow
/// rules, including that a fraction's excess digits are dropped, not rounded.
pub(super) fn parse_go_duration(s: &str) -> Result<i64, DurationError> {
    let mut s = s.as_bytes();
    let mut neg = false;
    if let Some((&c @ (b'-' | b'+'), rest)) = s.split_first() {
        neg = c == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(DurationError::Invalid);
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(DurationError::Invalid);
        }
        let (whole, rest) = leading_int(s)?;
        let pre = rest.len() != s.len();
        s = rest;
        let (mut frac, mut scale, mut post) = (0u64, 1f64, false);
        if let Some((b'.', rest)) = s.split_first() {
            let (f, sc, rest2) = leading_fraction(rest);
            post = rest2.len() != rest.len();
            (frac, scale, s) = (f, sc, rest2);
        }
        if !pre && !post {
            return Err(DurationError::Invalid);
        }
        let unit_len = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit);
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let Some(unit) = unit_nanos(unit) else {
            return Err(DurationError::UnknownUnit(
                String::from_utf8_lossy(unit).into_owned(),
            ));
        };
        if whole > DURATION_LIMIT / unit {
            return Err(DurationError::Overflow);
        }
        let mut v = whole * unit;
        if frac > 0 {
            // Go computes this part in float64 too; it is below `unit`, so the cast is exact
            // enough and cannot overflow.
            v += (frac as f64 * (unit as f64 / scale)) as u64;
            if v > DURATION_LIMIT {
                return Err(DurationError::Overflow);
            }
        }
        total = total.checked_add(v).ok_or(DurationError::Overflow)?;
        if total > DURATION_LIMIT {
            return Err(DurationError::Overflow);
        }
    }
    if neg {
        // total <= 2^63, so its negation fits (2^63 gives i64::MIN).
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| DurationError::Overflow)
}

/// Go's `leadingInt`: the leading decimal digits of `s`, refusing values past 2^63.
pub(super) fn leading_int(s: &[u8]) -> Result<(u64, &[u8]), DurationError> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut x: u64 = 0;
    for &c in &s[..digits] {
        if x > DURATION_LIMIT / 10 {
            return Err(DurationError::Overflow);
        }
        x = x * 10 + u64::from(c - b'0');
        if x > DURATION_LIMIT {
            return Err(DurationError::Overflow);
        }
    }
    Ok((x, &s[digits..]))
}

/// Go's `leadingFraction`: the digits after a '.', as a value and its power-of-ten scale;
/// digits beyond what fits are consumed and ignored.
pub(super) fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for &c in &s[..digits] {
        if overflow {
            continue;
        }
        if x > (DURATION_LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > DURATION_LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[digits..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        const S: i64 = NANOS_PER_SEC;
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("+0", 0),
            ("-0", 0),
            ("0s", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("-0s", 0),
            ("+0s", 0),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600_000_000),
            ("5.s", 5 * S),
            (".5s", S / 2),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4_000_000),
            ("1.0040s", S + 4_000_000),
            ("100.00100s", 100 * S + 1_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12µs", 12_000),
            ("12μs", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14 * S),
            ("15m", 15 * 60 * S),
            ("16h", 16 * 3600 * S),
            ("3h30m", (3 * 3600 + 30 * 60) * S),
            ("10.5s4m", 4 * 60 * S + 10 * S + S / 2),
            ("-2m3.4s", -(2 * 60 * S + 3 * S + 400_000_000)),
            (
                "1h2m3s4ms5us6ns",
                3600 * S + 2 * 60 * S + 3 * S + 4_000_000 + 5_000 + 6,
            ),
            (
                "39h9m14.425s",
                39 * 3600 * S + 9 * 60 * S + 14 * S + 425_000_000,
            ),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 20 * 60 * S),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("0.100000000000000000000h", 6 * 60 * S),
            ("0.830103483285477580700h", 49 * 60 * S + 48_372_539_827),
        ];
        for (s, want) in ok {
            assert_eq!(parse_go_duration(s), Ok(*want), "{s}");
        }
        let bad: &[(&str, DurationError)] = &[
            ("", DurationError::Invalid),
            ("-", DurationError::Invalid),
            ("+", DurationError::Invalid),
            ("3", DurationError::MissingUnit),
            ("s", DurationError::Invalid),
            (".", DurationError::Invalid),
            ("-.", DurationError::Invalid),
            (".s", DurationError::Invalid),
            ("+.s", DurationError::Invalid),
            ("1d", DurationError::UnknownUnit("d".into())),
            ("1s2", DurationError::MissingUnit),
            ("1.5", DurationError::MissingUnit),
            ("1sx", DurationError::UnknownUnit("sx".into())),
            ("- 1s", DurationError::Invalid),
            ("1 s", DurationError::UnknownUnit(" s".into())),
            ("9223372036854775808ns", DurationError::Overflow),
            ("-9223372036854775809ns", DurationError::Overflow),
            ("9223372036854775.808us", DurationError::Overflow),
            ("9223372036854ms775us808ns", DurationError::Overflow),
            ("9999999999999h", DurationError::Overflow),
            ("99999999999999999999s", DurationError::Overflow),
            ("3000000h", DurationError::Overflow),
        ];
        for (s, want) in bad {
            assert_eq!(parse_go_duration(s).as_ref(), Err(want), "{s}");
        }
    }
}
