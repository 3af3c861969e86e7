//! Syslog message parsing: RFC 5424 and RFC 3164 (BSD), told apart by the
//! `1 ` version after the priority. A line that is neither is kept whole as
//! the message and reported malformed, never dropped.

use switchyard_core::LogRecord;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Parse one syslog message. A message that does not parse comes back as a
/// record holding the raw line, with the reason.
pub fn parse(line: &str, now: OffsetDateTime) -> (LogRecord, Option<String>) {
    match parse_strict(line, now) {
        Ok(rec) => (rec, None),
        Err(reason) => {
            let mut rec = LogRecord::new(line);
            rec.timestamp = now;
            (rec, Some(reason))
        }
    }
}

fn parse_strict(line: &str, now: OffsetDateTime) -> Result<LogRecord, String> {
    let (pri, rest) = priority(line)?;
    let mut rec = match rest.strip_prefix("1 ") {
        Some(rest) => rfc5424(rest, now),
        None => rfc3164(rest, now),
    }?;
    let (facility, severity) = (pri / 8, pri % 8);
    rec.level = Some(SEVERITIES[severity as usize].to_string());
    let _ = rec
        .fields
        .insert_value("facility", FACILITIES[facility as usize]);
    let _ = rec.fields.insert_value("severity", &severity);
    Ok(rec)
}

/// `<PRI>` at the start: 0..=191.
fn priority(line: &str) -> Result<(u8, &str), String> {
    let rest = line
        .strip_prefix('<')
        .ok_or("does not start with `<PRI>`")?;
    let end = rest
        .find('>')
        .filter(|e| (1..=3).contains(e))
        .ok_or("bad `<PRI>`")?;
    let pri: u8 = rest[..end]
        .parse()
        .ok()
        .filter(|p| *p <= 191)
        .ok_or("`<PRI>` is not a number from 0 to 191")?;
    Ok((pri, &rest[end + 1..]))
}

/// Split off the next space-separated token.
fn token(s: &str) -> Option<(&str, &str)> {
    let (t, rest) = s.split_once(' ').unwrap_or((s, ""));
    (!t.is_empty()).then_some((t, rest))
}

fn nil(s: &str) -> Option<&str> {
    (s != "-").then_some(s)
}

/// `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`.
fn rfc5424(s: &str, now: OffsetDateTime) -> Result<LogRecord, String> {
    let mut fields = [""; 5];
    let mut rest = s;
    for f in &mut fields {
        let (t, r) = token(rest).ok_or("RFC 5424 header is incomplete")?;
        *f = t;
        rest = r;
    }
    let [ts, host, app, procid, msgid] = fields;
    let timestamp = match nil(ts) {
        None => now,
        Some(ts) => OffsetDateTime::parse(ts, &Rfc3339)
            .map_err(|e| format!("RFC 5424 timestamp `{ts}`: {e}"))?,
    };
    let (sd, msg) = structured_data(rest)?;
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    let mut rec = LogRecord::new(msg);
    rec.timestamp = timestamp;
    for (key, value) in [
        ("hostname", host),
        ("appname", app),
        ("procid", procid),
        ("msgid", msgid),
    ] {
        if let Some(v) = nil(value) {
            let _ = rec.fields.insert_value(key, v);
        }
    }
    if !sd.is_empty() {
        let _ = rec.fields.insert_value("structured_data", &sd);
    }
    Ok(rec)
}

/// `-` or one or more `[id key="value" ...]` elements, then the message.
fn structured_data(s: &str) -> Result<(serde_json::Map<String, serde_json::Value>, &str), String> {
    let mut out = serde_json::Map::new();
    if let Some(rest) = s.strip_prefix('-') {
        return Ok((out, rest.strip_prefix(' ').unwrap_or(rest)));
    }
    let mut rest = s;
    while let Some(body) = rest.strip_prefix('[') {
        let (id, mut params) = body
            .split_once([' ', ']'])
            .map(|(id, _)| (id, &body[id.len()..]))
            .ok_or("unterminated structured data")?;
        let mut element = serde_json::Map::new();
        loop {
            params = params.trim_start_matches(' ');
            if let Some(after) = params.strip_prefix(']') {
                rest = after;
                break;
            }
            let (name, value_and_rest) = params
                .split_once("=\"")
                .ok_or("structured data parameter without `=\"`")?;
            let (value, after) = quoted(value_and_rest)?;
            element.insert(name.to_string(), value.into());
            params = after;
        }
        out.insert(id.to_string(), element.into());
    }
    if out.is_empty() {
        return Err("structured data must be `-` or `[...]`".into());
    }
    Ok((out, rest.strip_prefix(' ').unwrap_or(rest)))
}

/// A structured-data value up to its closing quote (`\"`, `\\`, `\]` escaped).
fn quoted(s: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\' | ']'))) => value.push(e),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => break,
            },
            '"' => return Ok((value, &s[i + 1..])),
            c => value.push(c),
        }
    }
    Err("unterminated structured data value".into())
}

/// `Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG` — the year is not sent: the
/// current one is assumed, or the previous one for a date in the future.
fn rfc3164(s: &str, now: OffsetDateTime) -> Result<LogRecord, String> {
    // The timestamp is read at fixed byte offsets, so it must be ASCII: a
    // multi-byte character there would put those offsets inside it.
    let stamp = s
        .get(..16)
        .filter(|h| h.is_ascii() && h.ends_with(' '))
        .ok_or("neither RFC 5424 nor an RFC 3164 `Mmm dd hh:mm:ss` timestamp")?;
    let timestamp = bsd_time(&stamp[..15], now)?;
    let rest = &s[16..];
    let (host, rest) = token(rest).ok_or("RFC 3164 message without a hostname")?;
    let mut rec;
    // TAG is up to 32 alphanumerics, often with `[pid]`, ended by `:`.
    match rest.split_once(':') {
        Some((tag, msg)) if !tag.is_empty() && !tag.contains(' ') && tag.len() <= 48 => {
            rec = LogRecord::new(msg.strip_prefix(' ').unwrap_or(msg));
            let (app, pid) = match tag.split_once('[') {
                Some((app, pid)) => (app, pid.strip_suffix(']')),
                None => (tag, None),
            };
            let _ = rec.fields.insert_value("appname", app);
            if let Some(pid) = pid {
                let _ = rec.fields.insert_value("procid", pid);
            }
        }
        _ => rec = LogRecord::new(rest),
    }
    rec.timestamp = timestamp;
    let _ = rec.fields.insert_value("hostname", host);
    Ok(rec)
}

/// `s` is 15 ASCII bytes (checked by the caller).
fn bsd_time(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let bad = || format!("RFC 3164 timestamp `{s}` is not `Mmm dd hh:mm:ss`");
    if s.len() != 15 || !s.is_ascii() {
        return Err(bad());
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == &s[..3]).ok_or_else(bad)? as u8 + 1;
    let month = Month::try_from(month).map_err(|_| bad())?;
    let day: u8 = s[4..6].trim_start().parse().map_err(|_| bad())?;
    let num = |r: std::ops::Range<usize>| s[r].parse::<u8>().map_err(|_| bad());
    let (h, m, sec) = (num(7..9)?, num(10..12)?, num(13..15)?);
    let time = Time::from_hms(h, m, sec).map_err(|_| bad())?;
    let at = |year| {
        Date::from_calendar_date(year, month, day)
            .map(|d| PrimitiveDateTime::new(d, time).assume_utc())
            .map_err(|_| bad())
    };
    let this_year = at(now.year())?;
    if this_year - now > time::Duration::days(1) {
        return at(now.year() - 1);
    }
    Ok(this_year)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-11-25T12:00:00Z", &Rfc3339).unwrap()
    }

    fn fields(rec: &LogRecord) -> Value {
        serde_json::to_value(&rec.fields).unwrap()
    }

    #[test]
    fn real_world_lines_of_both_rfcs() {
        // (line, message, level, time, fields)
        let table: &[(&str, &str, &str, &str, Value)] = &[
            (
                r#"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8"#,
                "BOM'su root' failed for lonvick on /dev/pts/8",
                "crit",
                "2003-10-11T22:14:15.003Z",
                json!({"hostname":"mymachine.example.com","appname":"su","msgid":"ID47","facility":"auth","severity":2}),
            ),
            (
                r#"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts."#,
                "%% It's time to make the do-nuts.",
                "notice",
                "2003-08-24T12:14:15.000003Z",
                json!({"hostname":"192.0.2.1","appname":"myproc","procid":"8710","facility":"local4","severity":5}),
            ),
            (
                r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event"#,
                "An application event",
                "notice",
                "2003-10-11T22:14:15.003Z",
                json!({"hostname":"mymachine.example.com","appname":"evntslog","msgid":"ID47",
                       "structured_data":{"exampleSDID@32473":{"iut":"3","eventSource":"Application","eventID":"1011"},
                                          "examplePriority@32473":{"class":"high"}},
                       "facility":"local4","severity":5}),
            ),
            (
                r#"<13>1 - - - - - [x@1 note="a \"quoted\\ ] value"]"#,
                "",
                "notice",
                "2026-11-25T12:00:00Z",
                json!({"structured_data":{"x@1":{"note":"a \"quoted\\ ] value"}},"facility":"user","severity":5}),
            ),
            (
                "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
                "'su root' failed for lonvick on /dev/pts/8",
                "crit",
                "2026-10-11T22:14:15Z",
                json!({"appname":"su","hostname":"mymachine","facility":"auth","severity":2}),
            ),
            (
                "<30>Nov  5 08:01:02 web-01 sshd[4242]: Accepted publickey for deploy",
                "Accepted publickey for deploy",
                "info",
                "2026-11-05T08:01:02Z",
                json!({"appname":"sshd","procid":"4242","hostname":"web-01","facility":"daemon","severity":6}),
            ),
            (
                // December seen in November: last year.
                "<14>Dec 31 23:59:59 host app: new year",
                "new year",
                "info",
                "2025-12-31T23:59:59Z",
                json!({"appname":"app","hostname":"host","facility":"user","severity":6}),
            ),
            (
                "<14>Nov 25 11:00:00 host no tag here",
                "no tag here",
                "info",
                "2026-11-25T11:00:00Z",
                json!({"hostname":"host","facility":"user","severity":6}),
            ),
        ];
        for (line, msg, level, ts, expected) in table {
            let (rec, error) = parse(line, now());
            assert_eq!(error, None, "{line}");
            assert_eq!(rec.message.as_deref(), Some(*msg), "{line}");
            assert_eq!(rec.level.as_deref(), Some(*level), "{line}");
            assert_eq!(
                rec.timestamp,
                OffsetDateTime::parse(ts, &Rfc3339).unwrap(),
                "{line}"
            );
            assert_eq!(&fields(&rec), expected, "{line}");
        }
    }

    #[test]
    fn malformed_lines_are_kept_whole_with_a_reason() {
        let table = [
            ("plain text, no priority", "<PRI>"),
            ("<999>1 - - - - - - x", "0 to 191"),
            ("<>hello", "bad `<PRI>`"),
            ("<13>1 not-a-time host app - - - msg", "timestamp"),
            ("<13>1 2003-10-11T22:14:15Z host", "incomplete"),
            (
                "<13>1 2003-10-11T22:14:15Z h a p m [id k=\"v msg",
                "unterminated",
            ),
            (
                "<13>1 2003-10-11T22:14:15Z h a p m [id k=\"v\" msg",
                "structured data",
            ),
            (
                "<13>1 2003-10-11T22:14:15Z h a p m nosd msg",
                "structured data",
            ),
            ("<13>Foo 11 22:14:15 host x: y", "Mmm dd"),
            ("<13>short", "RFC 3164"),
            // Non-ASCII where the BSD timestamp is read by byte offsets.
            ("<13>Ja\u{e9}12345678901 host tag: boom", "RFC 3164"),
            (
                "<13>\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9} host tag: x",
                "RFC 3164",
            ),
            ("<13>Jan \u{e9}5 22:14:15 host tag: x", "RFC 3164"),
        ];
        for (line, reason) in table {
            let (rec, e) = parse(line, now());
            let e = e.unwrap_or_else(|| panic!("{line} parsed"));
            assert!(e.contains(reason), "{line}: {e}");
            assert_eq!(rec.message.as_deref(), Some(line));
            assert_eq!(rec.timestamp, now());
        }
    }

    /// A UDP syslog datagram with `é` inside the BSD timestamp used to panic
    /// (byte-offset slicing) and end the source task for good.
    #[test]
    fn non_ascii_in_a_bsd_timestamp_is_malformed_not_a_panic() {
        let bytes = b"<13>Ja\xc3\xa912345678901 host tag: boom";
        let line = std::str::from_utf8(bytes).unwrap();
        let (rec, error) = parse(line, now());
        assert!(error.is_some());
        assert_eq!(rec.message.as_deref(), Some(line));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any bytes, as the sources turn them into text: never a panic, and a
        /// line that does not parse is kept whole.
        #[test]
        fn any_bytes_parse_or_are_kept_whole(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let line = String::from_utf8_lossy(&bytes);
            let (rec, error) = parse(&line, now());
            if error.is_some() {
                proptest::prop_assert_eq!(rec.message.as_deref(), Some(&*line));
            }
        }

        /// Text shaped like syslog, with any characters (non-ASCII included)
        /// where the fields are read.
        #[test]
        fn syslog_shaped_text_never_panics(
            pri in 0u16..300,
            v5424 in proptest::bool::ANY,
            body in "(Jan|Feb|\\PC{1,3})[ \\PC]{0,20} [ \\PC\\[\\]\"=:\\\\-]{0,60}",
        ) {
            let line = format!("<{pri}>{}{body}", if v5424 { "1 " } else { "" });
            let (rec, error) = parse(&line, now());
            if error.is_some() {
                proptest::prop_assert_eq!(rec.message.as_deref(), Some(line.as_str()));
            }
        }
    }
}
