//! Secrets in captured headers: values of credential-bearing headers are
//! replaced before a header reaches a payload, a file or a backend.

/// Replacement text for a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Headers redacted unless configured otherwise.
pub const DEFAULT_REDACTED: [&str; 6] = [
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "X-Api-Key",
    "Api-Key",
];

/// A case-insensitive list of header names to redact.
#[derive(Debug, Clone)]
pub struct Redactor {
    names: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new(DEFAULT_REDACTED)
    }
}

impl Redactor {
    /// Redact exactly these names (case-insensitive).
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        Self {
            names: names
                .into_iter()
                .map(|n| n.as_ref().trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// Whether `name`'s values must be hidden.
    pub fn hides(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// `value`, or the redaction marker when `name` is secret.
    pub fn value<'a>(&self, name: &str, value: &'a str) -> &'a str {
        if self.hides(name) {
            REDACTED
        } else {
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_list_is_case_insensitive_and_configurable() {
        let r = Redactor::default();
        assert!(r.hides("authorization"));
        assert!(r.hides("SET-COOKIE"));
        assert!(r.hides("x-api-key"));
        assert!(!r.hides("Content-Type"));
        assert_eq!(r.value("Cookie", "a=b"), REDACTED);
        let custom = Redactor::new(["X-Secret"]);
        assert!(custom.hides("x-secret"));
        assert!(!custom.hides("Authorization"));
    }
}
