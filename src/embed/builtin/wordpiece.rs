//! The model's tokenizer: BERT's uncased WordPiece, read from `tokenizer.json` and run exactly
//! as Hugging Face `tokenizers` runs that file (its normalizer, pre-tokenizer, model and special
//! tokens; `tests/builtin_embedder.rs` compares the two on every labelled prompt and on
//! awkward text). Written out because `tokenizers` held 8 MB for this one vocabulary, an
//! eighth of the memory budget; here the vocabulary is one string and a sorted index, 0.6 MB.
//! Any other kind of tokenizer file is refused rather than tokenized differently.

use std::borrow::Cow;
use std::path::Path;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use unicode_categories::UnicodeCategories;
use unicode_normalization_alignments::UnicodeNormalization;

pub struct WordPiece {
    vocab: Vocab,
    /// Matched in the raw text, before normalisation (`normalized: false`).
    specials: Vec<(String, u32)>,
    prefix: String,
    max_word_chars: usize,
    unk: u32,
    cls: u32,
    sep: u32,
    max_tokens: usize,
}

#[derive(Deserialize)]
struct File {
    added_tokens: Vec<Added>,
    normalizer: Normalizer,
    pre_tokenizer: Typed,
    model: Model,
}

#[derive(Deserialize)]
struct Added {
    id: u32,
    content: String,
    single_word: bool,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
}

#[derive(Deserialize)]
struct Normalizer {
    #[serde(rename = "type")]
    kind: String,
    clean_text: bool,
    handle_chinese_chars: bool,
    strip_accents: Option<bool>,
    lowercase: bool,
}

#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Model {
    #[serde(rename = "type")]
    kind: String,
    unk_token: String,
    continuing_subword_prefix: String,
    max_input_chars_per_word: usize,
    vocab: Vocab,
}

/// Every token in one string, and (start, end, id) sorted by token for a binary search.
#[derive(Default)]
struct Vocab {
    text: String,
    index: Vec<(u32, u32, u32)>,
}

impl Vocab {
    fn get(&self, token: &str) -> Option<u32> {
        let at = |&(start, end, _): &(u32, u32, u32)| &self.text[start as usize..end as usize];
        self.index.binary_search_by(|entry| at(entry).cmp(token)).ok().map(|i| self.index[i].2)
    }
}

impl<'de> Deserialize<'de> for Vocab {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Vocab;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map from token to id")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vocab, A::Error> {
                let mut vocab = Vocab::default();
                while let Some((token, id)) = map.next_entry::<Cow<'de, str>, u32>()? {
                    let start = vocab.text.len();
                    vocab.text.push_str(&token);
                    let offset =
                        |n: usize| u32::try_from(n).map_err(|_| serde::de::Error::custom("vocabulary too large"));
                    vocab.index.push((offset(start)?, offset(vocab.text.len())?, id));
                }
                let text = &vocab.text;
                vocab
                    .index
                    .sort_unstable_by(|a, b| text[a.0 as usize..a.1 as usize].cmp(&text[b.0 as usize..b.1 as usize]));
                vocab.text.shrink_to_fit();
                vocab.index.shrink_to_fit();
                Ok(vocab)
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

impl WordPiece {
    /// Texts are cut to `max_tokens`, `[CLS]` and `[SEP]` included.
    pub fn from_file(path: &Path, max_tokens: usize) -> Result<Self, String> {
        let cannot = |e: &dyn std::fmt::Display| format!("cannot load the tokenizer {}: {e}", path.display());
        let text = std::fs::read(path).map_err(|e| cannot(&e))?;
        let file: File = serde_json::from_slice(&text).map_err(|e| cannot(&e))?;
        let n = &file.normalizer;
        let bert = n.kind == "BertNormalizer" && n.clean_text && n.handle_chinese_chars && n.lowercase;
        let raw_specials = file.added_tokens.iter().all(|a| !a.normalized && !a.single_word && !a.lstrip && !a.rstrip);
        if !bert
            || n.strip_accents == Some(false)
            || file.pre_tokenizer.kind != "BertPreTokenizer"
            || file.model.kind != "WordPiece"
            || !raw_specials
            || max_tokens < 3
        {
            return Err(cannot(&"not the uncased BERT WordPiece tokenizer this embedder runs"));
        }
        let id =
            |token: &str| file.model.vocab.get(token).ok_or_else(|| cannot(&format!("no {token} in the vocabulary")));
        Ok(Self {
            unk: id(&file.model.unk_token)?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            specials: file
                .added_tokens
                .into_iter()
                .filter(|a| !a.content.is_empty())
                .map(|a| (a.content, a.id))
                .collect(),
            prefix: file.model.continuing_subword_prefix,
            max_word_chars: file.model.max_input_chars_per_word,
            vocab: file.model.vocab,
            max_tokens,
        })
    }

    /// The largest id `encode` can give: every id must have a row in the embedding table.
    pub fn max_id(&self) -> u32 {
        let words = self.vocab.index.iter().map(|&(_, _, id)| id);
        words.chain(self.specials.iter().map(|&(_, id)| id)).chain([self.unk, self.cls, self.sep]).max().unwrap_or(0)
    }

    /// `[CLS]`, the text's tokens, `[SEP]`. Stops reading the text once it has enough tokens,
    /// which gives the same tokens as cutting the whole text's.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let budget = self.max_tokens - 1;
        let mut ids = vec![self.cls];
        let (mut word, mut key) = (String::new(), String::new());
        // Where each special token occurs next, searched again only once passed: the text is
        // scanned once per special token, not once per token found (a prompt of `[CLS]`s).
        let mut next: Vec<Option<usize>> = self.specials.iter().map(|(s, _)| text.find(s.as_str())).collect();
        let mut at = 0;
        while ids.len() < budget && at < text.len() {
            for ((content, _), found) in self.specials.iter().zip(&mut next) {
                if found.is_some_and(|f| f < at) {
                    *found = text[at..].find(content.as_str()).map(|f| at + f);
                }
            }
            // Leftmost, then longest, as `tokenizers` matches them.
            let special = (self.specials.iter().zip(&next))
                .filter_map(|((content, id), found)| found.map(|f| (f, content.len(), *id)))
                .min_by_key(|&(f, len, _)| (f, std::cmp::Reverse(len)));
            let end = special.map_or(text.len(), |(f, _, _)| f);
            'words: for raw in text[at..end].split(separator).filter(|w| !w.is_empty()) {
                normalize(raw, &mut word);
                for piece in pre_tokenize(&word) {
                    if ids.len() >= budget {
                        break 'words;
                    }
                    self.wordpiece(piece, &mut ids, &mut key);
                }
            }
            ids.extend(special.map(|(_, _, id)| id));
            at = special.map_or(text.len(), |(f, len, _)| f + len);
        }
        ids.truncate(budget);
        ids.push(self.sep);
        ids
    }

    /// Greedy longest match from the left; a word with a piece not in the vocabulary, or too
    /// long, is `[UNK]` as a whole.
    fn wordpiece(&self, word: &str, ids: &mut Vec<u32>, key: &mut String) {
        let mark = ids.len();
        if word.chars().count() > self.max_word_chars {
            ids.push(self.unk);
            return;
        }
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let found = loop {
                key.clear();
                if start > 0 {
                    key.push_str(&self.prefix);
                }
                key.push_str(&word[start..end]);
                if let Some(id) = self.vocab.get(key) {
                    break Some(id);
                }
                end -= word[start..end].chars().next_back().map_or(1, char::len_utf8);
                if end <= start {
                    break None;
                }
            };
            let Some(id) = found else {
                ids.truncate(mark);
                ids.push(self.unk);
                return;
            };
            ids.push(id);
            start = end;
        }
    }
}

/// Dropped by the normaliser's cleaning: NUL, U+FFFD and control characters other than tab,
/// newline and carriage return (which are whitespace).
fn dropped(c: char) -> bool {
    c == '\0' || c == '\u{fffd}' || (!matches!(c, '\t' | '\n' | '\r') && c.is_other())
}

/// Whitespace that survives cleaning; it separates words before and after normalisation, so
/// each word can be normalised on its own.
fn separator(c: char) -> bool {
    c.is_whitespace() && !dropped(c)
}

fn chinese(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B920..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// BertNormalizer with clean_text, handle_chinese_chars, strip_accents (implied by lowercase)
/// and lowercase, in that order.
fn normalize(raw: &str, out: &mut String) {
    let mut cleaned = String::with_capacity(raw.len());
    for c in raw.chars().filter(|&c| !dropped(c)) {
        if chinese(c) {
            cleaned.extend([' ', c, ' ']);
        } else {
            cleaned.push(c);
        }
    }
    out.clear();
    for (c, _) in cleaned.as_str().nfd().filter(|(c, _)| !c.is_mark_nonspacing()) {
        out.extend(c.to_lowercase());
    }
}

/// BertPreTokenizer: split on whitespace, and every punctuation character on its own.
fn pre_tokenize(text: &str) -> impl Iterator<Item = &str> {
    text.split(char::is_whitespace).flat_map(|word| {
        let mut pieces = Vec::new();
        let mut start = 0;
        for (i, c) in word.char_indices() {
            if c.is_ascii_punctuation() || c.is_punctuation() {
                pieces.extend([&word[start..i], &word[i..i + c.len_utf8()]]);
                start = i + c.len_utf8();
            }
        }
        pieces.push(&word[start..]);
        pieces.into_iter().filter(|p| !p.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer(max_tokens: usize) -> WordPiece {
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "cafe", ",", "!", "中"];
        let json = format!(
            "{{{}}}",
            vocab.iter().enumerate().map(|(i, t)| format!("\"{t}\": {i}")).collect::<Vec<_>>().join(",")
        );
        WordPiece {
            vocab: serde_json::from_str(&json).unwrap(),
            specials: vec![("[SEP]".into(), 3), ("[CLS]".into(), 2)],
            prefix: "##".into(),
            max_word_chars: 10,
            unk: 1,
            cls: 2,
            sep: 3,
            max_tokens,
        }
    }

    #[test]
    fn words_split_into_the_longest_known_pieces() {
        assert_eq!(tokenizer(64).encode("Unaffable, CAFÉ!"), [2, 4, 5, 6, 8, 7, 9, 3]);
    }

    #[test]
    fn the_largest_id_is_known_before_any_text() {
        assert_eq!(tokenizer(64).max_id(), 10);
        // Specials tokenised back to back, many times over: the same tokens as one at a time.
        let text = "[CLS]".repeat(1000) + "un[SEP]";
        let ids = tokenizer(8).encode(&text);
        assert_eq!(ids, [2, 2, 2, 2, 2, 2, 2, 3]);
    }

    #[test]
    fn unknown_and_overlong_words_are_one_unk() {
        assert_eq!(tokenizer(64).encode("unknown unaffableaff"), [2, 1, 1, 3]);
    }

    #[test]
    fn special_tokens_are_taken_from_the_raw_text() {
        assert_eq!(tokenizer(64).encode("un[SEP]un [cls]"), [2, 4, 3, 4, 1, 1, 1, 3]);
    }

    #[test]
    fn cleaning_drops_controls_and_splits_chinese_characters() {
        assert_eq!(tokenizer(64).encode("caf\u{0}e\u{b}中cafe"), [2, 7, 10, 7, 3]);
    }

    #[test]
    fn long_texts_are_cut_with_the_markers_kept() {
        assert_eq!(tokenizer(4).encode("un un un un"), [2, 4, 4, 3]);
        assert_eq!(tokenizer(3).encode(""), [2, 3]);
    }
}
