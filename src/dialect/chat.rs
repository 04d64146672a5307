//! Chat Completions shapes that more than one translation writes or reads (Chat is the hub).

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One tool call of an assistant message (a request's history, or a completion's answer).
/// `arguments` is the call's JSON text as a string, in whatever form the translation has it.
#[derive(Serialize)]
pub struct ToolCall<'a, A> {
    id: Option<&'a RawValue>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a, A>,
}

#[derive(Serialize)]
struct Function<'a, A> {
    name: Option<&'a RawValue>,
    arguments: A,
}

impl<'a, A: Serialize> ToolCall<'a, A> {
    /// A function call; the id and name are copied as they were written.
    pub fn new(id: Option<&'a RawValue>, name: Option<&'a RawValue>, arguments: A) -> Self {
        Self { id, kind: "function", function: Function { name, arguments } }
    }
}

/// A chunk's choice, by its `index`.
pub trait Indexed {
    fn index(&self) -> u64;
}

/// Choice 0 of a chunk's `choices` list, read in the list's one pass and kept without a list
/// (a translated request never asks for more; every element must still be a choice).
pub struct First<C>(pub Option<C>);

impl<'de, C: Deserialize<'de> + Indexed> Deserialize<'de> for First<C> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct List<C>(std::marker::PhantomData<C>);
        impl<'de, C: Deserialize<'de> + Indexed> Visitor<'de> for List<C> {
            type Value = First<C>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of choices")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First<C>, A::Error> {
                let mut first = None;
                while let Some(c) = seq.next_element::<C>()? {
                    if c.index() == 0 && first.is_none() {
                        first = Some(c);
                    }
                }
                Ok(First(first))
            }
        }
        d.deserialize_seq(List(std::marker::PhantomData))
    }
}
