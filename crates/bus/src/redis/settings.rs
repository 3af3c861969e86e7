//! Where Redis is, and how to talk about it without leaking a password.

use std::fmt;
use std::time::Duration;

/// How long a connection attempt may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Redis endpoint: a `redis://` URL (with the database, if any, already in
/// it). `Display` and `Debug` show it with the password replaced by `***`.
#[derive(Clone)]
pub struct RedisTarget {
    url: String,
}

impl RedisTarget {
    /// From the proxy's variables: `url` (`REDIS_URL`) wins; otherwise `addr`
    /// (`REDIS_ADDR`, `host:port`) and `db` (`REDIS_DB`).
    pub fn new(url: Option<&str>, addr: &str, db: Option<i64>) -> Result<Self, String> {
        let url = match url.filter(|u| !u.is_empty()) {
            Some(u) => {
                if !(u.starts_with("redis://") || u.starts_with("redis+unix://")) {
                    return Err(format!(
                        "REDIS_URL `{}` must start with redis:// (TLS is not built in)",
                        redact(u)
                    ));
                }
                u.to_string()
            }
            None => {
                if addr.is_empty() || addr.contains('/') {
                    return Err(format!("REDIS_ADDR `{addr}` must be host:port"));
                }
                match db {
                    Some(db) => format!("redis://{addr}/{db}"),
                    None => format!("redis://{addr}/"),
                }
            }
        };
        let target = Self { url };
        target.client()?; // validate now, at the edge
        Ok(target)
    }

    /// A client for this target (no connection is made yet).
    pub fn client(&self) -> Result<redis::Client, String> {
        redis::Client::open(self.url.as_str())
            .map_err(|e| format!("invalid Redis URL `{self}`: {}", redact(&e.to_string())))
    }
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisTarget({self})")
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`. Applied to anything
/// that may contain the URL before it is logged or returned as an error.
pub fn redact(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', ' ', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_string();
    };
    let userinfo = &rest[..at];
    let user = match userinfo.find(':') {
        Some(colon) => &userinfo[..colon],
        None if userinfo.is_empty() => "",
        // `redis://secret@host` puts the password where a user would be.
        None => "",
    };
    format!("{}{}:***{}", &text[..scheme_end + 3], user, &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(redact("redis://pw@h"), "redis://:***@h");
        assert_eq!(redact("redis://h:1/2"), "redis://h:1/2");
        let t = RedisTarget::new(Some("redis://u:hunter2@127.0.0.1:1/3"), "", None).unwrap();
        assert!(!format!("{t} {t:?}").contains("hunter2"));
    }

    #[test]
    fn addr_and_db_make_a_url_and_bad_input_is_named() {
        let t = RedisTarget::new(None, "10.0.0.1:6380", Some(2)).unwrap();
        assert_eq!(t.to_string(), "redis://10.0.0.1:6380/2");
        let e = RedisTarget::new(Some("http://:pw@x"), "", None).unwrap_err();
        assert!(e.contains("REDIS_URL") && !e.contains("pw"), "{e}");
        assert!(RedisTarget::new(None, "", None).is_err());
    }
}
