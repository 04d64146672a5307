//! Reading a JSON body without building a tree: an object's members borrowed as raw text,
//! each read only when a translation needs it. What passes unchanged (schemas, sampling
//! values, ids) can then be copied as the client wrote it. The Responses → Chat request is
//! still read and written through serde here; the other translations use [`super::json`] and
//! write their bytes themselves.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::ApiError;

/// A JSON object's members, borrowed: each value is its raw text, read only when needed. In
/// [`key_order`], the last of repeated keys kept (as a JSON tree would hold them).
#[derive(Default)]
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    pub fn of_body(body: &'a [u8]) -> Result<Self, ApiError> {
        Self::read(body).map_err(|_| super::refused_body(body))
    }

    /// The members of a whole body (a request's, or an answer's) that is an object.
    pub fn read(body: &'a [u8]) -> serde_json::Result<Self> {
        super::from_json::<Body>(body).map(|b| b.0)
    }

    /// The members of `value` when it is an object.
    pub fn of(value: &'a RawValue) -> Option<Self> {
        value.get().starts_with('{').then(|| serde_json::from_str(value.get()).ok()).flatten()
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        // In `key_order`, each once (see `deserialize`).
        self.0.binary_search_by(|(k, _)| key_order(k, key)).ok().map(|i| self.0[i].1)
    }

    /// The member's value unless it is absent or null (which a JSON tree reads the same way).
    pub fn present(&self, key: &str) -> Option<&'a RawValue> {
        self.get(key).filter(|v| !is_null(v))
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(Members(4))
    }
}

/// A body's members: room for a request's usual dozen at once (growing from a nested
/// object's four took two more allocations).
struct Body<'a>(Fields<'a>);

impl<'de> Deserialize<'de> for Body<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(Members(16)).map(Body)
    }
}

/// Reads an object's members into a list of this initial capacity.
struct Members(usize);

impl<'de> Visitor<'de> for Members {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
        let mut members: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::with_capacity(self.0);
        while let Some((Str(key), value)) = map.next_entry::<Str, &RawValue>()? {
            members.push((key, value));
        }
        // Sorted (stable: a repeated key's last value stays last among its own), then
        // the last of each key kept, in O(n log n) whatever a hostile body repeats.
        members.sort_by(|a, b| key_order(&a.0, &b.0));
        members.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        Ok(Fields(members))
    }
}

/// The order members are kept in: by length, then bytes. Most lookups are of members a body
/// does not have, and a length differs from almost every key's, so a search rarely compares
/// bytes at all.
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// The members of each element of a list, read in the list's one pass (rather than the list,
/// then each element again); an element that is not an object has none, as a JSON tree would
/// index it. `None` when the value is not a list.
pub fn objects(value: &RawValue) -> Option<Vec<Fields<'_>>> {
    let list: Vec<Object> = value.get().starts_with('[').then(|| serde_json::from_str(value.get()).ok()).flatten()?;
    Some(list.into_iter().map(|o| o.0).collect())
}

/// A list element: an object's members, or none for any other value.
struct Object<'a>(Fields<'a>);

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Object<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Object<'de>, M::Error> {
                Fields::deserialize(MapAccessDeserializer::new(map)).map(Object)
            }

            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Object<'de>, S::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Object(Fields::default()))
            }

            fn visit_str<E>(self, _: &str) -> Result<Object<'de>, E> {
                Ok(Object(Fields::default()))
            }

            fn visit_bool<E>(self, _: bool) -> Result<Object<'de>, E> {
                Ok(Object(Fields::default()))
            }

            fn visit_i64<E>(self, _: i64) -> Result<Object<'de>, E> {
                Ok(Object(Fields::default()))
            }

            fn visit_u64<E>(self, _: u64) -> Result<Object<'de>, E> {
                Ok(Object(Fields::default()))
            }

            fn visit_f64<E>(self, _: f64) -> Result<Object<'de>, E> {
                Ok(Object(Fields::default()))
            }

            fn visit_unit<E>(self) -> Result<Object<'de>, E> {
                Ok(Object(Fields::default()))
            }
        }
        d.deserialize_any(Any)
    }
}

/// A JSON string (a member's key, or a value), borrowed unless it has escapes.
#[derive(Deserialize)]
pub struct Str<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// A string value, borrowed unless it has escapes; `None` when the value is not a string.
pub fn text(value: &RawValue) -> Option<Cow<'_, str>> {
    unescaped(value.get())
}

/// [`text`] of a value's checked JSON text.
pub fn unescaped(raw: &str) -> Option<Cow<'_, str>> {
    let inner = super::json::contents(raw)?;
    match inner.contains('\\') {
        false => Some(Cow::Borrowed(inner)),
        true => serde_json::from_str(raw).ok().map(Cow::Owned),
    }
}

/// A JSON value's text as a whole number, also when written as a float (`10.0`, `1e3`): some
/// servers and clients do.
pub fn number(text: &str) -> Option<u64> {
    text.parse().ok().or_else(|| whole(text.parse().ok()?))
}

/// `n` when it is a whole number a `u64` holds (`as` would saturate).
fn whole(n: f64) -> Option<u64> {
    (n >= 0.0 && n.fract() == 0.0 && n < u64::MAX as f64).then_some(n as u64)
}

pub fn is_string(value: &RawValue) -> bool {
    value.get().starts_with('"')
}

pub fn is_null(value: &RawValue) -> bool {
    value.get() == "null"
}

pub fn is_true(value: &RawValue) -> bool {
    value.get() == "true"
}

/// `value` as compact JSON text (what `Value::to_string` writes, members in the client's
/// order), borrowed when the client already wrote it without whitespace between tokens.
pub fn compact(raw: &str) -> Cow<'_, str> {
    let (mut in_string, mut escaped) = (false, false);
    let mut out = String::new();
    // Start of the text not yet copied to `out`; whitespace is ASCII, so every cut is on a
    // character boundary.
    let mut kept = 0;
    for (i, b) in raw.bytes().enumerate() {
        if in_string {
            (in_string, escaped) = (escaped || b != b'"', !escaped && b == b'\\');
        } else if b == b'"' {
            in_string = true;
        } else if b.is_ascii_whitespace() {
            out.push_str(&raw[kept..i]);
            kept = i + 1;
        }
    }
    if kept == 0 {
        return Cow::Borrowed(raw);
    }
    out.push_str(&raw[kept..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_read_each_element_once_and_tolerate_any_value() {
        let raw: &RawValue =
            serde_json::from_str(r#"[{"a":1,"a":2}, "x\"", 5, -1.5, true, null, [1, {"b":2}], {"c":"\u00e9"}, {}]"#)
                .unwrap();
        let list = objects(raw).unwrap();
        assert_eq!(list.len(), 9);
        assert_eq!(list[0].get("a").map(RawValue::get), Some("2"), "the last of a repeated key");
        assert!(list[1..7].iter().all(|f| f.0.is_empty()), "what is not an object has no members");
        assert_eq!(list[7].get("c").and_then(text).as_deref(), Some("\u{e9}"));
        for not_a_list in [r#"{"a":[]}"#, r#""[""#, "null", "3"] {
            assert!(objects(serde_json::from_str(not_a_list).unwrap()).is_none(), "{not_a_list}");
        }
    }
}
