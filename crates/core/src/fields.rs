//! [`Fields`]: the keys of a log record that the model does not name, kept as
//! the JSON text they came in.
//!
//! All members live in one string (`"k":v,"k2":v2`), so a record costs one
//! allocation for its fields however many there are, and writing it back is
//! one copy. Reading a field scans that text; records are small, and the
//! ingest → sink path never reads them at all.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Structured fields of a log record: key → JSON value, in arrival order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Fields {
    /// Members as JSON object text without the braces. Only ever built from
    /// JSON that was already validated, so it always scans.
    text: String,
}

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Number of fields (a scan).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The members as JSON text (`"k":v,"k2":v2`), ready to be placed between
    /// an object's braces.
    pub fn as_members(&self) -> &str {
        &self.text
    }

    /// Fields from member text (`"k":v,...`) stored by [`Fields::as_members`],
    /// checked to be valid JSON members first: the invariant that the text
    /// always scans must hold for text read back from disk too.
    pub(crate) fn from_members(text: String) -> Result<Self, serde_json::Error> {
        if !text.is_empty() {
            let object = format!("{{{text}}}");
            serde_json::from_str::<serde::de::IgnoredAny>(&object)?;
        }
        // Valid JSON is not enough: the scan reads `"key":value` members
        // joined by bare commas, and would stop short at a space before `:`
        // or `,`, losing every field after it.
        let fields = Self { text };
        let mut scan = fields.iter();
        for _ in scan.by_ref() {}
        if !scan.rest.is_empty() {
            return Err(serde::de::Error::custom(
                "fields are not compact `\"key\":value` members: whitespace before a `:` or `,`",
            ));
        }
        Ok(fields)
    }

    /// Every field in order, with its value as raw JSON.
    pub fn iter(&self) -> Iter<'_> {
        Iter { rest: &self.text }
    }

    /// The raw JSON value of `key` (the first one, if the input repeated it).
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Set `key` to a raw JSON value, replacing any earlier value.
    pub fn insert(&mut self, key: &str, value: &RawValue) {
        self.remove(key);
        self.push_escaped_member(key, value.get());
    }

    /// Set `key` to any serializable value.
    pub fn insert_value<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> serde_json::Result<()> {
        let raw = serde_json::value::to_raw_value(value)?;
        self.insert(key, &raw);
        Ok(())
    }

    /// Remove every occurrence of `key`; true if there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        if self.get(key).is_none() {
            return false;
        }
        let mut kept = Fields::new();
        for (k, v) in self.iter().filter(|(k, _)| k != key) {
            kept.push_escaped_member(&k, v.get());
        }
        *self = kept;
        true
    }

    /// Append a member whose key needs no JSON escaping (the parser knows:
    /// it came in without escapes). `value` is valid JSON text.
    pub(crate) fn push_plain_member(&mut self, key: &str, value: &str) {
        self.begin_member(key.len() + value.len() + 3);
        self.text.push('"');
        self.text.push_str(key);
        self.text.push_str("\":");
        self.text.push_str(value);
    }

    /// Append a member whose key may need escaping. `value` is valid JSON text.
    pub(crate) fn push_escaped_member(&mut self, key: &str, value: &str) {
        self.begin_member(key.len() + value.len() + 3);
        crate::json_string::push_str(&mut self.text, key);
        self.text.push(':');
        self.text.push_str(value);
    }

    fn begin_member(&mut self, len: usize) {
        if self.text.is_empty() {
            // Room for a few more members of this size: one allocation per record.
            self.text.reserve(len * 4);
        } else {
            self.text.push(',');
        }
    }
}

/// Iterator over [`Fields`]: `(key, raw value)`.
pub struct Iter<'a> {
    rest: &'a str,
}

/// The JSON value at the start of `s` and the length of its text.
fn leading_value(s: &str) -> Option<(&RawValue, usize)> {
    let mut stream = serde_json::Deserializer::from_str(s).into_iter::<&RawValue>();
    let value = stream.next()?.ok()?;
    Some((value, stream.byte_offset()))
}

impl<'a> Iterator for Iter<'a> {
    type Item = (Cow<'a, str>, &'a RawValue);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest.strip_prefix(',').unwrap_or(self.rest);
        if rest.is_empty() {
            return None;
        }
        let (key, key_len) = leading_value(rest)?;
        let after_key = rest[key_len..].strip_prefix(':')?;
        let (value, value_len) = leading_value(after_key)?;
        self.rest = &after_key[value_len..];
        Some((unquote(key.get()), value))
    }
}

/// The string a JSON string literal stands for, borrowed when it has no escapes.
fn unquote(quoted: &str) -> Cow<'_, str> {
    let inner = &quoted[1..quoted.len() - 1];
    if inner.contains('\\') {
        Cow::Owned(serde_json::from_str(quoted).unwrap_or_default())
    } else {
        Cow::Borrowed(inner)
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.text)
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.iter() {
            m.serialize_entry(&k, v)?;
        }
        m.end()
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (Cow<'a, str>, &'a RawValue);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn members_scan_back_in_order() {
        let mut f = Fields::new();
        f.push_plain_member("a", "1");
        f.push_escaped_member("b\"q", r#"{"x":[1,"y,z"]}"#);
        f.push_plain_member("c", "-2.5e3");
        let got: Vec<(String, String)> = f
            .iter()
            .map(|(k, v)| (k.into_owned(), v.get().to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), "1".into()),
                ("b\"q".into(), r#"{"x":[1,"y,z"]}"#.into()),
                ("c".into(), "-2.5e3".into()),
            ]
        );
        assert_eq!(f.len(), 3);
        assert_eq!(f.get("c").unwrap().get(), "-2.5e3");
    }

    #[test]
    fn stored_members_with_spaces_are_refused_not_scanned_short() {
        // Found by the members property: valid JSON with a space before `:`
        // or `,` was accepted, but the scan stopped there, so `get`, `len`
        // and `remove` lost every later field.
        for spaced in [r#""a" :1,"b":2"#, r#""a":1 ,"b":2"#, r#""a":1 "#] {
            assert!(Fields::from_members(spaced.into()).is_err(), "{spaced}");
        }
        let tight = Fields::from_members(r#" "a": 1,"b":[1, 2]"#.into()).unwrap();
        assert_eq!(tight.len(), 2);
        assert_eq!(tight.get("b").unwrap().get(), "[1, 2]");
    }

    #[test]
    fn insert_replaces_and_remove_removes() {
        let mut f = Fields::new();
        f.insert("a", &raw("1"));
        f.insert("b", &raw("true"));
        f.insert("a", &raw(r#""two""#));
        assert_eq!(f.as_members(), r#""b":true,"a":"two""#);
        assert!(f.remove("b"));
        assert!(!f.remove("b"));
        assert_eq!(f.as_members(), r#""a":"two""#);
        f.insert_value("n\"x", &[1, 2]).unwrap();
        assert_eq!(f.get("n\"x").unwrap().get(), "[1,2]");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v, serde_json::json!({"a": "two", "n\"x": [1, 2]}));
    }
}

#[cfg(test)]
mod props {
    //! Member text is read back from storage, which may be damaged: any
    //! text must be refused or scan to its end, never panic or lose fields.
    use super::*;
    use proptest::prelude::*;

    /// The members `from_members` accepted scan to the end of the text.
    fn scans_whole(text: String) -> Result<(), TestCaseError> {
        let Ok(fields) = Fields::from_members(text) else {
            return Ok(());
        };
        let mut it = fields.iter();
        for _ in it.by_ref() {}
        prop_assert_eq!(
            it.rest,
            "",
            "members left unscanned in {:?}",
            fields.as_members()
        );
        Ok(())
    }

    fn ws() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "", "", " ", "\n", "\t "])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            scans_whole(text)?;
        }

        #[test]
        fn members_with_any_spacing_scan_whole_or_are_refused(
            members in proptest::collection::vec(
                (any::<String>(), ws(), ws(), ws(), ws(), prop_oneof![
                    Just("1".to_string()), Just("[1, {\"a\" : \"b\"}]".to_string()),
                    any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
                ]),
                1..5),
        ) {
            let text: Vec<String> = members
                .iter()
                .map(|(k, a, b, c, d, v)| {
                    format!("{a}{}{b}:{c}{v}{d}", serde_json::to_string(k).unwrap())
                })
                .collect();
            scans_whole(text.join(","))?;
        }
    }
}
