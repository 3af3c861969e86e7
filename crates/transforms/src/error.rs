//! Errors of building transforms from their settings.

use std::fmt;

/// A transform that cannot be built from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// `type` names no registered transform.
    #[error("type: unknown transform type `{name}`; expected one of {}", known.join(", "))]
    UnknownType {
        /// The type asked for.
        name: String,
        /// The registered types.
        known: Vec<&'static str>,
    },
    /// A setting is wrong; `key` is its path inside the transform's
    /// settings (`condition`, `ops[0].parse`, `env.HOME`), empty when the
    /// settings as a whole are at fault.
    #[error("{}", at(key, message))]
    Config {
        /// Where, e.g. `ops[0].parse`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

fn at(key: &str, message: &str) -> String {
    if key.is_empty() {
        message.to_string()
    } else {
        format!("{key}: {message}")
    }
}

impl TransformError {
    /// A setting at `key` is wrong.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The key at fault (`type` for an unknown type), if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::UnknownType { .. } => Some("type"),
            Self::Config { key, .. } if key.is_empty() => None,
            Self::Config { key, .. } => Some(key),
        }
    }

    /// The message without its key.
    pub fn message(&self) -> String {
        match self {
            Self::UnknownType { name, known } => format!(
                "unknown transform type `{name}`; expected one of {}",
                known.join(", ")
            ),
            Self::Config { message, .. } => message.clone(),
        }
    }

    /// The same error one level down, under `outer` (e.g. `ops[0]`).
    pub fn within(self, outer: &str) -> Self {
        match self.key() {
            Some(key) => Self::config(format!("{outer}.{key}"), self.message()),
            None => Self::config(outer, self.message()),
        }
    }
}

/// A condition (of `filter` or `sample`) that does not parse; the message
/// says what was expected where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConditionError(pub String);

/// A transform of a list that cannot be built: its position and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ChainError {
    /// Position in the list.
    pub index: usize,
    /// Why.
    pub error: TransformError,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error.key() {
            Some(key) => write!(
                f,
                "transforms[{}].{key}: {}",
                self.index,
                self.error.message()
            ),
            None => write!(f, "transforms[{}]: {}", self.index, self.error.message()),
        }
    }
}
