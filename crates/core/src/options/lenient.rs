//! A deserializer over option values that takes a number or a boolean
//! written as text (`--sink-option batch-max-events=5`, or a quoted YAML
//! `"5"`) wherever the config wants one, and a number or boolean wherever it
//! wants text (a YAML `user: 123`). Everything else is read as the value
//! says.
//!
//! Written here because serde's value deserializers are strict about types,
//! and one config struct must read both flags (all text) and YAML (typed).

use serde::de::{
    self, DeserializeSeed, Deserializer, Error as _, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

type Error = serde_json::Error;

/// One option value, read leniently.
pub(crate) struct Lenient(pub Value);

/// Parse `text` as a `T`, or say what was expected instead.
fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, Error> {
    text.trim()
        .parse()
        .map_err(|_| Error::custom(format!("expected {what}, not `{text}`")))
}

macro_rules! number {
    ($($method:ident: $ty:ty => $visit:ident, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::String(s) => visitor.$visit(parse::<$ty>(&s, $what)?),
                other => other.$method(visitor),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Lenient {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Entries::new(map)),
            Value::Array(items) => visitor.visit_seq(Items(items.into_iter())),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => match s.trim() {
                "true" => visitor.visit_bool(true),
                "false" => visitor.visit_bool(false),
                _ => Err(Error::custom(format!("expected true or false, not `{s}`"))),
            },
            other => other.deserialize_bool(visitor),
        }
    }

    number! {
        deserialize_u8: u8 => visit_u8, "a whole number from 0 to 255";
        deserialize_u16: u16 => visit_u16, "a whole number from 0 to 65535";
        deserialize_u32: u32 => visit_u32, "a whole number of at least 0";
        deserialize_u64: u64 => visit_u64, "a whole number of at least 0";
        deserialize_i8: i8 => visit_i8, "a whole number";
        deserialize_i16: i16 => visit_i16, "a whole number";
        deserialize_i32: i32 => visit_i32, "a whole number";
        deserialize_i64: i64 => visit_i64, "a whole number";
        deserialize_f32: f32 => visit_f32, "a number";
        deserialize_f64: f64 => visit_f64, "a number";
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Number(n) => visitor.visit_string(n.to_string()),
            Value::Bool(b) => visitor.visit_string(b.to_string()),
            other => other.deserialize_string(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Lenient(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            // `true`/`1` for an enum written as text (`line: json`) read as
            // their text, so the error lists the variants.
            Value::Bool(b) => visitor.visit_enum(b.to_string().into_deserializer()),
            Value::Number(n) => visitor.visit_enum(n.to_string().into_deserializer()),
            other => other.deserialize_enum(name, variants, visitor),
        }
    }

    forward_to_deserialize_any! {
        char bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// The entries of a mapping, values read leniently.
struct Entries {
    iter: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl Entries {
    fn new(map: Map<String, Value>) -> Self {
        Self {
            iter: map.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((key, value)) => {
                self.value = Some(value);
                let key: de::value::StringDeserializer<Error> = key.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| Error::custom("a value was asked for before its key"))?;
        seed.deserialize(Lenient(value))
    }
}

/// The items of a sequence, read leniently.
struct Items(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Items {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(Lenient(v)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct C {
        n: usize,
        on: bool,
        name: String,
        ratio: Option<f64>,
        #[serde(default)]
        list: Vec<u32>,
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Fast,
    }

    fn read(v: Value) -> Result<C, Error> {
        C::deserialize(Lenient(v))
    }

    #[test]
    fn text_reads_as_numbers_and_booleans_and_back() {
        let from_flags =
            read(json!({"n": "5", "on": "true", "name": "x", "ratio": "0.5", "mode": "fast"}));
        let native = read(json!({"n": 5, "on": true, "name": "x", "ratio": 0.5, "mode": "fast"}));
        assert_eq!(from_flags.unwrap(), native.unwrap());
        let c = read(json!({"n": 1, "on": false, "name": 123, "list": ["1", 2]})).unwrap();
        assert_eq!(
            (c.name.as_str(), c.list, c.ratio),
            ("123", vec![1, 2], None)
        );
    }

    #[test]
    fn bad_text_says_what_was_expected() {
        let e = read(json!({"n": "five", "on": true, "name": "x"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a whole number of at least 0, not `five`"
        );
        let e = read(json!({"n": 1, "on": "yes", "name": "x"})).unwrap_err();
        assert_eq!(e.to_string(), "expected true or false, not `yes`");
        let e = read(json!({"n": 1, "on": true, "name": "x", "colour": 1})).unwrap_err();
        assert!(e.to_string().starts_with("unknown field `colour`"), "{e}");
    }
}
