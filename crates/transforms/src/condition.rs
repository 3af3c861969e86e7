//! A small condition language over a record's fields and labels.
//!
//! ```text
//! level == "error" and not labels.env == "dev"
//! exists user.id or message =~ "timeout|refused"
//! (status != 200) and not exists retry
//! ```
//!
//! - Comparisons: `PATH == VALUE`, `PATH != VALUE` (JSON equality: `"200"` is
//!   not `200`), `PATH =~ "regex"`, `PATH !~ "regex"` (on strings; other
//!   values never match `=~`).
//! - `exists PATH`; `and`, `or`, `not`, parentheses; `and` binds tighter
//!   than `or`.
//! - Values: `"strings"` (JSON escapes), numbers, `true`, `false`, `null`.
//! - Paths as in [`crate::path`]. A path that is absent is unequal to every
//!   value, so `x != 1` holds when `x` is missing.

use crate::error::ConditionError;
use crate::path::Path;
use regex::Regex;
use serde_json::Value;
use switchyard_core::LogRecord;

/// A parsed condition.
#[derive(Debug)]
pub enum Condition {
    /// Both hold.
    And(Box<Condition>, Box<Condition>),
    /// Either holds.
    Or(Box<Condition>, Box<Condition>),
    /// Does not hold.
    Not(Box<Condition>),
    /// The path has a value.
    Exists(Path),
    /// Equal (or not, when `negate`).
    Eq {
        /// Left side.
        path: Path,
        /// Right side.
        value: Value,
        /// `!=`.
        negate: bool,
    },
    /// Regex match (or not, when `negate`).
    Matches {
        /// Left side.
        path: Path,
        /// The pattern.
        regex: Regex,
        /// `!~`.
        negate: bool,
    },
}

impl Condition {
    /// Parse a condition; the error says what was expected where.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        Self::parse_text(text).map_err(ConditionError)
    }

    fn parse_text(text: &str) -> Result<Self, String> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            at: 0,
            depth: 0,
            operators: 0,
        };
        let c = p.or()?;
        match p.tokens.get(p.at) {
            None => Ok(c),
            Some(t) => Err(format!(
                "unexpected `{}` after a complete condition",
                t.text()
            )),
        }
    }

    /// Evaluate against a record.
    pub fn holds(&self, rec: &LogRecord) -> bool {
        match self {
            Condition::And(a, b) => a.holds(rec) && b.holds(rec),
            Condition::Or(a, b) => a.holds(rec) || b.holds(rec),
            Condition::Not(c) => !c.holds(rec),
            Condition::Exists(p) => p.get(rec).is_some(),
            Condition::Eq {
                path,
                value,
                negate,
            } => (path.get(rec).as_ref() == Some(value)) != *negate,
            Condition::Matches {
                path,
                regex,
                negate,
            } => {
                let hit = matches!(path.get(rec), Some(Value::String(s)) if regex.is_match(&s));
                hit != *negate
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Value(Value),
    Op(&'static str),
    Open,
    Close,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Value(v) => v.to_string(),
            Token::Op(o) => (*o).into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
        }
    }
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let c = rest.chars().next().expect("not empty");
        let (token, len) = if let Some(op) = ["==", "!=", "=~", "!~"]
            .iter()
            .find(|o| rest.starts_with(**o))
        {
            (Token::Op(op), 2)
        } else if c == '(' {
            (Token::Open, 1)
        } else if c == ')' {
            (Token::Close, 1)
        } else if c == '"' {
            let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<String>();
            let s = stream
                .next()
                .and_then(Result::ok)
                .ok_or_else(|| format!("unterminated or invalid string at `{rest}`"))?;
            (Token::Value(Value::String(s)), stream.byte_offset())
        } else {
            let len = rest
                .find(|c: char| c.is_whitespace() || "()=!\"".contains(c))
                .unwrap_or(rest.len());
            if len == 0 {
                return Err(format!("unexpected `{c}`"));
            }
            let word = &rest[..len];
            let token = match word {
                "true" => Token::Value(Value::Bool(true)),
                "false" => Token::Value(Value::Bool(false)),
                "null" => Token::Value(Value::Null),
                w if w.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                    let n: serde_json::Number =
                        w.parse().map_err(|_| format!("`{w}` is not a number"))?;
                    Token::Value(Value::Number(n))
                }
                w => Token::Word(w.to_string()),
            };
            (token, len)
        };
        out.push(token);
        rest = rest[len..].trim_start();
    }
    Ok(out)
}

/// Deepest nesting of parentheses and `not` a condition may have.
const MAX_NESTING: usize = 64;
/// Most `and`, `or` and `not` operators a condition may have.
const MAX_OPERATORS: usize = 1024;

/// Parsing, evaluating and dropping a condition recurse once per level of
/// its tree, so both bounds keep the tree shallow enough for any thread's
/// stack (a deeper one aborted the process with a stack overflow).
struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Parentheses and `not`s open at the current token.
    depth: usize,
    operators: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(x)) if x == w)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn operator(&mut self) -> Result<(), String> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(format!(
                "more than {MAX_OPERATORS} `and`, `or` and `not` operators: split the condition into several filters"
            ));
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(format!(
                "nested deeper than {MAX_NESTING} levels of parentheses and `not`"
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut c = self.and()?;
        while self.peek_word("or") {
            self.operator()?;
            self.at += 1;
            c = Condition::Or(Box::new(c), Box::new(self.and()?));
        }
        Ok(c)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut c = self.not()?;
        while self.peek_word("and") {
            self.operator()?;
            self.at += 1;
            c = Condition::And(Box::new(c), Box::new(self.not()?));
        }
        Ok(c)
    }

    fn not(&mut self) -> Result<Condition, String> {
        if self.peek_word("not") {
            self.operator()?;
            self.enter()?;
            self.at += 1;
            let c = Condition::Not(Box::new(self.not()?));
            self.depth -= 1;
            return Ok(c);
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Condition, String> {
        match self.next() {
            Some(Token::Open) => {
                self.enter()?;
                let c = self.or()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token::Close) => Ok(c),
                    other => Err(format!(
                        "expected `)`, found {}",
                        other.map_or("the end".into(), |t| format!("`{}`", t.text()))
                    )),
                }
            }
            Some(Token::Word(w)) if w == "exists" => match self.next() {
                Some(Token::Word(p)) => Ok(Condition::Exists(Path::parse(&p)?)),
                _ => Err("`exists` needs a field path".into()),
            },
            Some(Token::Word(p)) => {
                let path = Path::parse(&p)?;
                let op = match self.next() {
                    Some(Token::Op(op)) => op,
                    other => {
                        return Err(format!(
                            "expected ==, !=, =~ or !~ after `{p}`, found {}",
                            other.map_or("the end".into(), |t| format!("`{}`", t.text()))
                        ))
                    }
                };
                let value = match self.next() {
                    Some(Token::Value(v)) => v,
                    other => {
                        return Err(format!(
                            "expected a value after `{p} {op}`, found {}",
                            other.map_or("the end".into(), |t| format!("`{}`", t.text()))
                        ))
                    }
                };
                match op {
                    "==" | "!=" => Ok(Condition::Eq {
                        path,
                        value,
                        negate: op == "!=",
                    }),
                    _ => {
                        let Value::String(pattern) = value else {
                            return Err(format!("`{p} {op}` needs a \"regex\" string"));
                        };
                        let regex = Regex::new(&pattern)
                            .map_err(|e| format!("bad regex `{pattern}`: {e}"))?;
                        Ok(Condition::Matches {
                            path,
                            regex,
                            negate: op == "!~",
                        })
                    }
                }
            }
            other => Err(format!(
                "expected a condition, found {}",
                other.map_or("the end".into(), |t| format!("`{}`", t.text()))
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_table() {
        let rec: LogRecord = serde_json::from_str(
            r#"{"msg":"connection refused by upstream","level":"error","labels":{"env":"prod"},"status":502,"code":"502","user":{"id":7},"ok":false}"#,
        )
        .unwrap();
        let table = [
            (r#"level == "error""#, true),
            (r#"level != "error""#, false),
            (r#"labels.env == "prod" and status == 502"#, true),
            (r#"status == "502""#, false),
            (r#"code == "502""#, true),
            (r#"message =~ "refused|timeout""#, true),
            (r#"message !~ "^conn""#, false),
            (r#"status =~ "5""#, false),
            ("exists user.id", true),
            ("exists user.name", false),
            ("not exists user.name", true),
            ("missing != 1", true),
            ("missing == null", false),
            ("ok == false and user.id == 7", true),
            (
                r#"level == "info" or level == "error" and status == 502"#,
                true,
            ),
            (
                r#"(level == "info" or level == "error") and status == 404"#,
                false,
            ),
            (r#"not not level == "error""#, true),
            (r#"labels.env == "dev" or not (status == 200)"#, true),
        ];
        for (text, expected) in table {
            let c = Condition::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(c.holds(&rec), expected, "{text}");
        }
    }

    #[test]
    fn deeply_nested_conditions_are_refused_not_a_stack_overflow() {
        // Each `(` or `not` was one more level of recursion, in the parser
        // and again when the condition was evaluated and dropped: a long
        // enough config value overflowed the stack and aborted the process.
        for text in [
            format!("{}level == 1{}", "(".repeat(100_000), ")".repeat(100_000)),
            format!("{}level == 1", "not ".repeat(100_000)),
        ] {
            let e = Condition::parse(&text).unwrap_err();
            assert!(e.to_string().contains("nested deeper than 64"), "{e}");
        }
        // A long chain nests too: `and` builds its tree leftwards.
        let chain = vec!["level == 1"; 100_000].join(" and ");
        let e = Condition::parse(&chain).unwrap_err();
        assert!(e.to_string().contains("more than 1024"), "{e}");
        let fine = format!("{}level == 1{}", "(".repeat(32), ")".repeat(32));
        assert!(Condition::parse(&fine).is_ok());
    }

    #[test]
    fn errors_say_what_was_expected() {
        let table = [
            ("", "expected a condition"),
            ("level", "expected ==, !=, =~ or !~ after `level`"),
            ("level ==", "expected a value after `level ==`"),
            (r#"level == "x" and"#, "expected a condition"),
            (r#"(level == "x""#, "expected `)`"),
            (r#"level == "x" level"#, "unexpected `level`"),
            (r#"message =~ "(""#, "bad regex"),
            ("message =~ 3", "needs a \"regex\" string"),
            (r#"level == "unterminated"#, "unterminated"),
            ("exists", "needs a field path"),
            ("a..b == 1", "not a field path"),
            ("x == 1.2.3", "not a number"),
        ];
        for (text, expected) in table {
            let e = Condition::parse(text)
                .err()
                .unwrap_or_else(|| panic!("{text} parsed"));
            assert!(e.to_string().contains(expected), "{text}: {e}");
        }
    }
}

#[cfg(test)]
mod props {
    //! Conditions are config text: any text parses or is refused with a
    //! message, never a panic, and what parses evaluates on any record.
    use super::*;
    use proptest::prelude::*;

    fn record(message: String, level: String, field: String) -> LogRecord {
        let mut rec = LogRecord::new(message);
        rec.level = Some(level);
        rec.fields
            .insert_value("user", &serde_json::json!({"name": field}))
            .unwrap();
        rec
    }

    /// Condition-shaped text: the language's own tokens mixed with garbage.
    fn condition_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                prop::sample::select(vec![
                    "level",
                    "message",
                    "user.name",
                    "labels.app",
                    "exists",
                    "not",
                    "and",
                    "or",
                    "(",
                    ")",
                    "==",
                    "!=",
                    "=~",
                    "!~",
                    "\"error\"",
                    "\"^é+$\"",
                    "\"(\"",
                    "1e999",
                    "-0",
                    "true",
                    "null",
                    "\"\\u00e9\"",
                    "\"",
                    " ",
                ])
                .prop_map(str::to_string),
                any::<String>(),
            ],
            0..12,
        )
        .prop_map(|parts| parts.join(" "))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            if let Ok(c) = Condition::parse(&text) {
                c.holds(&LogRecord::new(text));
            }
        }

        #[test]
        fn condition_shaped_text_parses_or_is_refused_and_evaluates(
            text in condition_text(),
            message in any::<String>(),
            level in any::<String>(),
            field in any::<String>(),
        ) {
            match Condition::parse(&text) {
                Ok(c) => {
                    c.holds(&record(message, level, field));
                }
                Err(e) => prop_assert!(!e.0.is_empty()),
            }
        }

        /// `level == "<any text>"` holds exactly for that level.
        #[test]
        fn equality_on_any_text_holds_for_that_text(want in any::<String>(), other in any::<String>()) {
            let quoted = serde_json::to_string(&want).unwrap();
            let c = Condition::parse(&format!("level == {quoted}")).unwrap();
            prop_assert!(c.holds(&record(String::new(), want.clone(), String::new())));
            prop_assert_eq!(
                c.holds(&record(String::new(), other.clone(), String::new())),
                other == want
            );
        }
    }
}
