//! What can go wrong building a component from its options, with the option
//! at fault named as the user wrote it.

use std::fmt;

/// The option an error is about: its key path inside the component's
/// options (`["rotate", "max_bytes"]`), and, once known, how the user
/// wrote it (`sinks.out.options.rotate.max_bytes`, `--sink-option
/// rotate.max_bytes`, `--endpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionKey {
    segments: Vec<String>,
    shown: Option<String>,
}

impl OptionKey {
    /// The option at `segments` (`["labels"]`, `["rotate", "max_bytes"]`).
    pub fn new<S: AsRef<str>>(segments: &[S]) -> Self {
        Self {
            segments: segments.iter().map(|s| s.as_ref().to_string()).collect(),
            shown: None,
        }
    }

    /// The key path inside the component's options.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Say where the option was written (see [`crate::Options`]).
    pub(crate) fn shown_as(&mut self, shown: String) {
        self.shown = Some(shown);
    }
}

impl fmt::Display for OptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shown {
            Some(shown) => f.write_str(shown),
            None => write!(f, "option `{}`", self.segments.join(".")),
        }
    }
}

/// Why a component could not be built from its options. Every variant says
/// what to change: the key at fault and what it expects, the type names
/// that exist, or the resource that could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No component of this type is registered.
    #[error("unknown {kind} `{name}`; available: {available}")]
    UnknownType {
        /// `sink`, `source`, ...
        kind: &'static str,
        /// The type asked for.
        name: String,
        /// The registered types, comma-separated.
        available: String,
    },
    /// A key the component does not have.
    #[error("{key}: unknown option; {expected}")]
    UnknownOption {
        /// The key.
        key: OptionKey,
        /// The keys the component has (`expected one of ...`).
        expected: String,
    },
    /// An option whose value the component cannot use.
    #[error("{key}: {message}")]
    Invalid {
        /// The option.
        key: OptionKey,
        /// What is expected instead.
        message: String,
    },
    /// Options that do not fit together, or a required one that is missing;
    /// the message names the keys involved.
    #[error("{0}")]
    Options(String),
    /// The options are good but what they describe could not be set up
    /// (a thread, a client, a file).
    #[error("cannot start: {0}")]
    Start(String),
}

impl BuildError {
    /// The value of the option at `key` is not usable: `message` says what
    /// is expected.
    pub fn invalid<S: AsRef<str>>(key: &[S], message: impl Into<String>) -> Self {
        Self::Invalid {
            key: OptionKey::new(key),
            message: message.into(),
        }
    }

    /// Options that do not fit together, or a missing one.
    pub fn options(message: impl Into<String>) -> Self {
        Self::Options(message.into())
    }

    /// What the options describe could not be set up.
    pub fn start(message: impl Into<String>) -> Self {
        Self::Start(message.into())
    }

    /// The option the error is about, if it is about one.
    pub fn key(&self) -> Option<&OptionKey> {
        match self {
            Self::UnknownOption { key, .. } | Self::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The message without the option's place, for callers that show the
    /// place themselves (a line number and a key path).
    pub fn detail(&self) -> String {
        match self {
            Self::UnknownOption { expected, .. } => format!("unknown option; {expected}"),
            Self::Invalid { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    pub(crate) fn key_mut(&mut self) -> Option<&mut OptionKey> {
        match self {
            Self::UnknownOption { key, .. } | Self::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_option_until_its_place_is_known() {
        let mut e = BuildError::invalid(&["rotate", "max_bytes"], "expected a size");
        assert_eq!(e.to_string(), "option `rotate.max_bytes`: expected a size");
        e.key_mut()
            .unwrap()
            .shown_as("sinks.f.options.rotate.max_bytes".into());
        assert_eq!(
            e.to_string(),
            "sinks.f.options.rotate.max_bytes: expected a size"
        );
        assert_eq!(e.detail(), "expected a size");
        assert_eq!(e.key().unwrap().segments(), ["rotate", "max_bytes"]);
        assert!(BuildError::options("x").key().is_none());
    }
}
