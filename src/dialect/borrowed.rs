//! Reading a JSON body without building a tree: an object's members borrowed as raw text,
//! each read only when a translation needs it. What passes unchanged (schemas, sampling
//! values, ids) can then be copied as the client wrote it.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::ApiError;

/// A JSON object's members, borrowed: each value is its raw text, read only when needed. In
/// key order, the last of repeated keys kept (as a JSON tree would hold them).
#[derive(Default)]
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    pub fn of_body(body: &'a [u8]) -> Result<Self, ApiError> {
        if body.iter().copied().find(|b| !b.is_ascii_whitespace()) != Some(b'{') {
            return Err(ApiError::bad_request("invalid_json", "request body must be a JSON object"));
        }
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON in request body: {e}")))
    }

    /// The members of `value` when it is an object.
    pub fn of(value: &'a RawValue) -> Option<Self> {
        value.get().starts_with('{').then(|| serde_json::from_str(value.get()).ok()).flatten()
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
                let mut members: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
                while let Some((Str(key), value)) = map.next_entry::<Str, &RawValue>()? {
                    members.push((key, value));
                }
                // Sorted (stable: a repeated key's last value stays last among its own), then
                // the last of each key kept, in O(n log n) whatever a hostile body repeats.
                members.sort_by(|a, b| a.0.cmp(&b.0));
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
        d.deserialize_map(Members)
    }
}

/// A JSON string (a member's key, or a value), borrowed unless it has escapes.
#[derive(Deserialize)]
pub struct Str<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// A string value, borrowed unless it has escapes; `None` when the value is not a string.
pub fn text(value: &RawValue) -> Option<Cow<'_, str>> {
    is_string(value).then(|| serde_json::from_str::<Str>(value.get()).ok().map(|s| s.0)).flatten()
}

pub fn list(value: &RawValue) -> Option<Vec<&RawValue>> {
    value.get().starts_with('[').then(|| serde_json::from_str(value.get()).ok()).flatten()
}

pub fn as_u64(value: &RawValue) -> Option<u64> {
    value.get().parse().ok()
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

