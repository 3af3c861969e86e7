//! Reading one `chat.completion.chunk` of a stream: what it contributes to
//! the merged completion.
//!
//! A stream has one chunk per token or word, so this is the transformer's
//! hottest loop. Readers, tried in order, give the same [`Piece`]:
//! - the pattern: most chunks of a stream are the previous chunk with another
//!   content string. When the text before and after the content string is
//!   byte for byte the previous chunk's, the chunk is the same JSON but for
//!   that string, and only the string is read (see [`Reader::read`]).
//! - [`read_fast`]: a [`Scanner`] walk that picks the few fields the merge
//!   uses and steps over the rest; it gives up on anything unusual (escaped
//!   keys, duplicate fields, a field of an unexpected type, deep nesting).
//! - `read_typed`: a borrowed serde struct, for the chunks the walk gave up on.
//! - `read_value`: a `serde_json::Value`, for chunks whose fields have
//!   unexpected types (their fields are then read where they fit).
//!
//! The first two are only optimisations of the third: whenever they answer,
//! they answer what `read_typed` would have (tests check this on random
//! chunks and streams).

use super::scan::Scanner;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::ops::Range;

/// What one chunk contributes; borrowed from the chunk's text where
/// possible, so a chunk costs one walk and no copies beyond its content.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Piece<'a> {
    /// Raw JSON of `id`, `object`, `created`, `model` (absent when `null`).
    pub ids: [Option<Cow<'a, str>>; 4],
    /// Raw JSON of `usage` (absent when `null`).
    pub usage: Option<Cow<'a, str>>,
    /// `choices[0].delta.content`.
    pub content: Option<Cow<'a, str>>,
    /// `choices[0].delta.role`.
    pub role: Option<Cow<'a, str>>,
    /// `choices[0].finish_reason`.
    pub finish_reason: Option<Cow<'a, str>>,
}

/// Reads the chunks of one stream, in order.
pub(super) struct Reader<'a> {
    /// The last chunk the walk read, and where its content string is.
    pattern: Option<(&'a str, Range<usize>)>,
    fast: bool,
}

impl<'a> Reader<'a> {
    /// A reader for a new stream; `fast: false` reads every chunk with serde
    /// (the reference the fast readers are tested against).
    pub fn new(fast: bool) -> Self {
        Self {
            pattern: None,
            fast,
        }
    }

    /// What the chunk in `data` contributes; `None` when it is not a JSON
    /// object.
    pub fn read(&mut self, data: &'a str) -> Option<Read<'a>> {
        if !self.fast {
            return read_typed(data)
                .or_else(|| read_value(data))
                .map(Read::Piece);
        }
        if let Some(content) = self
            .pattern
            .as_ref()
            .and_then(|p| same_but_content(p, data))
        {
            return Some(Read::Content(content));
        }
        let piece = match read_fast(data) {
            Some((piece, content_at)) => {
                self.pattern = content_at.map(|at| (data, at));
                piece
            }
            None => {
                self.pattern = None;
                read_typed(data).or_else(|| read_value(data))?
            }
        };
        Some(Read::Piece(piece))
    }
}

/// What a chunk contributes, as [`Reader::read`] found it.
pub(super) enum Read<'a> {
    /// The pattern chunk again, with this content. Its other fields are the
    /// pattern's, which the merge has already taken (ids and role: the first
    /// one wins, and the pattern's came first; usage and finish reason: the
    /// last one wins, and setting them again to the same value changes
    /// nothing, since every chunk read since the pattern had the same ones).
    Content(Option<Cow<'a, str>>),
    /// A chunk read in full.
    Piece(Piece<'a>),
}

/// The content of `data` when it is `pattern` with another content string;
/// `None` when anything else differs. The parse state is the same at the end
/// of equal prefixes, a string leaves it as any other string would, and the
/// rest is equal again: so `data` is valid JSON with the same fields.
fn same_but_content<'a>(
    (pattern, at): &(&str, Range<usize>),
    data: &'a str,
) -> Option<Option<Cow<'a, str>>> {
    let tail = &pattern.as_bytes()[at.end..];
    let bytes = data.as_bytes();
    if bytes.get(..at.start)? != &pattern.as_bytes()[..at.start] || !bytes.ends_with(tail) {
        return None;
    }
    let mut s = Scanner::new(data);
    s.seek(at.start);
    let content = text(&mut s)?;
    (s.pos() == data.len() - tail.len()).then_some(content)
}

/// Mark field `bit` as seen; `None` when it was already (serde refuses
/// duplicate fields, so the fallback must decide).
fn once(seen: &mut u8, bit: usize) -> Option<()> {
    let mask = 1u8 << bit;
    let first = *seen & mask == 0;
    *seen |= mask;
    first.then_some(())
}

fn raw(json: &str) -> Option<Cow<'_, str>> {
    (json != "null").then_some(Cow::Borrowed(json))
}

/// The walk: the chunk's fields in one pass, and where its content string
/// is; or `None` to let serde decide.
fn read_fast(data: &str) -> Option<(Piece<'_>, Option<Range<usize>>)> {
    let mut piece = Piece::default();
    let mut content_at = None;
    let mut seen = 0u8;
    let mut s = Scanner::new(data);
    s.ws();
    s.object(|s, key| {
        // In `Piece::ids` order, then the others.
        let field = match key {
            "id" => 0,
            "object" => 1,
            "created" => 2,
            "model" => 3,
            "usage" => 4,
            "choices" => 5,
            _ => return s.value().map(drop),
        };
        once(&mut seen, field)?;
        match field {
            0..=3 => piece.ids[field] = raw(s.value()?),
            4 => piece.usage = raw(s.value()?),
            _ => choices(s, &mut piece, &mut content_at)?,
        }
        Some(())
    })?;
    s.at_end().then_some((piece, content_at))
}

fn null(s: &mut Scanner<'_>) -> Option<bool> {
    if s.peek()? == b'n' {
        s.value()?;
        return Some(true);
    }
    Some(false)
}

/// `choices`: the first element is read, the others only stepped over.
fn choices<'a>(
    s: &mut Scanner<'a>,
    piece: &mut Piece<'a>,
    content_at: &mut Option<Range<usize>>,
) -> Option<()> {
    if null(s)? {
        return Some(());
    }
    s.array(|s, i| {
        if i > 0 {
            return s.value().map(drop);
        }
        let mut seen = 0u8;
        s.object(|s, key| match key {
            "delta" => {
                once(&mut seen, 0)?;
                delta(s, piece, content_at)
            }
            "finish_reason" => {
                once(&mut seen, 1)?;
                piece.finish_reason = text(s)?;
                Some(())
            }
            _ => s.value().map(drop),
        })
    })
}

fn delta<'a>(
    s: &mut Scanner<'a>,
    piece: &mut Piece<'a>,
    content_at: &mut Option<Range<usize>>,
) -> Option<()> {
    if null(s)? {
        return Some(());
    }
    let mut seen = 0u8;
    s.object(|s, key| match key {
        "content" => {
            once(&mut seen, 0)?;
            let start = s.pos();
            piece.content = text(s)?;
            if piece.content.is_some() {
                *content_at = Some(start..s.pos());
            }
            Some(())
        }
        "role" => {
            once(&mut seen, 1)?;
            piece.role = text(s)?;
            Some(())
        }
        _ => s.value().map(drop),
    })
}

/// A string or `null`; anything else is left to serde.
fn text<'a>(s: &mut Scanner<'a>) -> Option<Option<Cow<'a, str>>> {
    if null(s)? {
        return Some(None);
    }
    let start = s.pos();
    let (inner, escaped) = s.string()?;
    if !escaped {
        return Some(Some(Cow::Borrowed(inner)));
    }
    // Rare: decode exactly as serde does (it also refuses lone surrogates).
    let decoded = serde_json::from_str::<String>(s.since(start)).ok()?;
    Some(Some(Cow::Owned(decoded)))
}

/// One chunk, read by serde without building a tree.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<First<ChunkChoice<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

/// The first element of a JSON array (the rest is skipped): `choices[0]`
/// without a `Vec` per chunk.
struct First<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = First<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<First<T>, A::Error> {
                let first = seq.next_element()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
}

fn raw_value(v: Option<&RawValue>) -> Option<Cow<'_, str>> {
    v.map(RawValue::get).and_then(raw)
}

fn read_typed(data: &str) -> Option<Piece<'_>> {
    let c: Chunk = serde_json::from_str(data).ok()?;
    let first = c.choices.and_then(|cs| cs.0);
    let (delta, finish_reason) = match first {
        Some(ch) => (ch.delta, ch.finish_reason),
        None => (None, None),
    };
    let (content, role) = match delta {
        Some(d) => (d.content, d.role),
        None => (None, None),
    };
    Some(Piece {
        ids: [
            raw_value(c.id),
            raw_value(c.object),
            raw_value(c.created),
            raw_value(c.model),
        ],
        usage: raw_value(c.usage),
        content,
        role,
        finish_reason,
    })
}

fn read_value(data: &str) -> Option<Piece<'static>> {
    let Ok(Value::Object(chunk)) = serde_json::from_str::<Value>(data) else {
        return None;
    };
    let owned = |k: &str| {
        chunk
            .get(k)
            .filter(|v| !v.is_null())
            .map(|v| Cow::Owned(v.to_string()))
    };
    let choice = chunk.get("choices").and_then(|c| c.get(0));
    let delta = choice.and_then(|c| c.get("delta"));
    let text = |v: Option<&Value>, k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(|s| Cow::Owned(s.to_owned()))
    };
    Some(Piece {
        ids: [
            owned("id"),
            owned("object"),
            owned("created"),
            owned("model"),
        ],
        usage: owned("usage"),
        content: text(delta, "content"),
        role: text(delta, "role"),
        finish_reason: text(choice, "finish_reason"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CHUNK: &str = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}],"usage":null}"#;

    #[test]
    fn the_walk_reads_an_ordinary_chunk() {
        let (p, at) = read_fast(CHUNK).unwrap();
        assert_eq!(&CHUNK[at.unwrap()], "\"Hi\"");
        assert_eq!(
            p.ids,
            [
                Some("\"c1\"".into()),
                Some("\"chat.completion.chunk\"".into()),
                Some("1".into()),
                Some("\"m\"".into())
            ]
        );
        assert_eq!(p.usage, None);
        assert_eq!(p.content.as_deref(), Some("Hi"));
        assert_eq!(p.role.as_deref(), Some("assistant"));
        assert_eq!(p.finish_reason, None);
        assert_eq!(Some(p), read_typed(CHUNK));
    }

    #[test]
    fn the_walk_leaves_unusual_chunks_to_serde() {
        for odd in [
            r#"{"id":1,"id":2}"#,                           // duplicate field
            r#"{"choices":[{"delta":{"content":["x"]}}]}"#, // content not a string
            r#"{"choices":[{"delta":["x"]}]}"#,             // serde reads a struct from an array
            r#"{"\u0069d":"x"}"#,                           // escaped key
            r#"{"choices":{}}"#,
            "[1]",
        ] {
            assert!(read_fast(odd).is_none(), "{odd}");
        }
        assert_eq!(
            read_fast(r#"{"choices":[{"delta":{"content":"a\nb\u00e9"}}]}"#)
                .unwrap()
                .0
                .content
                .as_deref(),
            Some("a\nb\u{e9}")
        );
    }

    /// Chunk-like JSON from pieces, valid or not, with the fields the walk
    /// reads in all the types they can have.
    fn chunks() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            Just("null"),
            Just("1"),
            Just("\"w\""),
            Just("\"\\u00e9\\n\""),
            Just("\"\\ud800\""),
            Just("[]"),
            Just("{}"),
            Just("[{}]"),
            Just("{\"x\":[1,2]}"),
            Just("tru"),
        ];
        let key = prop_oneof![
            Just("id"),
            Just("model"),
            Just("usage"),
            Just("other"),
            Just("i\\u0064"),
            Just("content"),
            Just("role"),
            Just("finish_reason"),
        ];
        let member = (key, value).prop_map(|(k, v)| format!("\"{k}\":{v}"));
        let members = proptest::collection::vec(member, 0..4).prop_map(|m| m.join(","));
        let delta = members.clone().prop_map(|m| format!("{{{m}}}"));
        let choice = (members.clone(), delta, prop::bool::ANY).prop_map(|(m, d, fin)| {
            let fin = if fin {
                ",\"finish_reason\":\"stop\""
            } else {
                ""
            };
            let sep = if m.is_empty() { "" } else { "," };
            format!("{{{m}{sep}\"delta\":{d}{fin}}}")
        });
        let choices = proptest::collection::vec(choice, 0..3)
            .prop_map(|c| format!("\"choices\":[{}]", c.join(",")));
        (members, choices, prop::bool::ANY).prop_map(|(m, c, tail)| {
            let sep = if m.is_empty() { "" } else { "," };
            if tail {
                format!("{{{m}{sep}{c}}} ")
            } else {
                format!("{{{c}{sep}{m}}}")
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// Whenever the walk answers, it answers what serde would.
        #[test]
        fn the_walk_agrees_with_serde(chunk in chunks()) {
            if let Some((fast, _)) = read_fast(&chunk) {
                let slow = read_typed(&chunk).or_else(|| read_value(&chunk));
                prop_assert_eq!(Some(fast), slow, "{}", chunk);
            }
        }
    }
}
