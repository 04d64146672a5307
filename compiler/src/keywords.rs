//! Heuristic rules compiled to one scanner over every keyword and exclusion (an Aho-Corasick
//! automaton, or SIMD substring search when there are only a few),
//! plus a rule table evaluated in order.
//!
//! Matching follows openziti/llm-gateway: keywords are case-insensitive literals with a word
//! boundary on each edge whose character is an ASCII letter, digit or `_` (so `c++` works and
//! non-ASCII edges match as substrings); the text searched is every user message joined with
//! spaces; any keyword suffices, any exclusion vetoes; conditions are ANDed; first match wins.

use std::borrow::Cow;
use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::plan::RouteId;

/// One message as the heuristics see it: its role and its text (string content, or the
/// text parts joined with newlines).
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub role: &'a str,
    pub text: Cow<'a, str>,
}

/// What a routing decision needs to know about a request.
#[derive(Debug, Clone, Default)]
pub struct RequestView<'a> {
    pub messages: Vec<Message<'a>>,
    pub max_tokens: Option<u64>,
    pub has_tools: bool,
}

/// A validated rule, before compilation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSpec {
    pub keywords: Vec<String>,
    pub exclude: Vec<String>,
    pub has_tools: Option<bool>,
    pub system_prompt_contains: Option<String>,
    pub max_tokens_lt: Option<u64>,
    pub message_length_lt: Option<u64>,
    pub route: RouteId,
}

impl RuleSpec {
    /// Lowercases, sorts and de-duplicates keywords and exclusions (they are any-of sets
    /// matched case-insensitively), which makes [`RuleSpec::shadowed_by`] cheap.
    pub fn normalized(mut self) -> Self {
        for list in [&mut self.keywords, &mut self.exclude] {
            for word in list.iter_mut() {
                *word = word.to_lowercase();
            }
            list.sort_unstable();
            list.dedup();
        }
        self.system_prompt_contains = self.system_prompt_contains.map(|s| s.to_lowercase());
        self
    }

    /// True when every request this rule matches is also matched by `earlier`, so this
    /// rule can never win. Conservative: false when unsure. Both rules must be normalized.
    pub fn shadowed_by(&self, earlier: &RuleSpec) -> bool {
        let within = |mine: &[String], theirs: &[String]| mine.iter().all(|w| theirs.binary_search(w).is_ok());
        let keywords_ok = earlier.keywords.is_empty()
            || (!self.keywords.is_empty()
                && within(&self.keywords, &earlier.keywords)
                && within(&earlier.exclude, &self.exclude));
        let tools_ok = earlier.has_tools.is_none() || earlier.has_tools == self.has_tools;
        let system_ok = match (&earlier.system_prompt_contains, &self.system_prompt_contains) {
            (None, _) => true,
            (Some(e), Some(m)) => m.contains(e.as_str()),
            (Some(_), None) => false,
        };
        let below = |e: Option<u64>, m: Option<u64>| match (e, m) {
            (None, _) => true,
            (Some(e), Some(m)) => m <= e,
            (Some(_), None) => false,
        };
        keywords_ok
            && tools_ok
            && system_ok
            && below(earlier.max_tokens_lt, self.max_tokens_lt)
            && below(earlier.message_length_lt, self.message_length_lt)
    }
}

#[derive(Debug)]
struct Pattern {
    word_start: bool,
    word_end: bool,
    /// Rules for which this pattern is a keyword.
    keyword_of: Vec<u32>,
    /// Rules for which this pattern is an exclusion.
    exclusion_of: Vec<u32>,
}

#[derive(Debug)]
struct Rule {
    has_keywords: bool,
    has_tools: Option<bool>,
    system_prompt_contains: Option<String>,
    max_tokens_lt: Option<u64>,
    message_length_lt: Option<u64>,
    route: RouteId,
}

/// Finds every occurrence (overlapping ones included) of the lowercased patterns.
#[derive(Debug)]
enum Scanner {
    /// A few patterns: one SIMD substring search each beats a byte-at-a-time automaton.
    Few(Vec<memchr::memmem::Finder<'static>>),
    /// Automata of at most [`CHUNK`] patterns each, with the id of each one's first pattern.
    Many(Vec<(usize, AhoCorasick)>),
}

/// Patterns per automaton. Building one with standard (overlapping) semantics takes time
/// quadratic in its number of match states when many patterns are prefixes of others
/// (aho-corasick's state shuffle), so a large set is split: 100,000 keywords compile in a
/// fraction of a second instead of over ten, and a set this size or smaller (every real
/// config) is still scanned once.
const CHUNK: usize = 8192;

/// Up to this many distinct patterns, [`Scanner::Few`] is faster on a 2 KB prompt.
const FEW_PATTERNS: usize = 8;

impl Scanner {
    fn each_match(&self, text: &[u8], mut f: impl FnMut(usize, usize, usize)) {
        match self {
            Scanner::Few(finders) => {
                for (id, finder) in finders.iter().enumerate() {
                    let mut from = 0;
                    while let Some(at) = finder.find(&text[from..]) {
                        let start = from + at;
                        f(id, start, start + finder.needle().len());
                        from = start + 1;
                    }
                }
            }
            Scanner::Many(automata) => {
                for (first, ac) in automata {
                    for m in ac.find_overlapping_iter(text) {
                        f(first + m.pattern().as_usize(), m.start(), m.end());
                    }
                }
            }
        }
    }
}

#[derive(Debug)]
pub struct Heuristics {
    scanner: Option<Scanner>,
    patterns: Vec<Pattern>,
    rules: Vec<Rule>,
}

/// Which rule matched and where it routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub rule: usize,
    pub route: RouteId,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Heuristics {
    pub fn compile(specs: &[RuleSpec]) -> Result<Self, aho_corasick::BuildError> {
        let mut texts: Vec<String> = Vec::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut intern = |text: &str, rule: u32, exclusion: bool| {
            let lowered = text.to_lowercase();
            let id = match ids.get(&lowered) {
                Some(&id) => id,
                None => {
                    let bytes = lowered.as_bytes();
                    patterns.push(Pattern {
                        word_start: bytes.first().copied().is_some_and(is_word),
                        word_end: bytes.last().copied().is_some_and(is_word),
                        keyword_of: Vec::new(),
                        exclusion_of: Vec::new(),
                    });
                    ids.insert(lowered.clone(), texts.len());
                    texts.push(lowered);
                    texts.len() - 1
                }
            };
            let list = if exclusion { &mut patterns[id].exclusion_of } else { &mut patterns[id].keyword_of };
            if list.last() != Some(&rule) {
                list.push(rule);
            }
        };
        let mut rules = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let i = i as u32;
            for k in &spec.keywords {
                intern(k, i, false);
            }
            // Exclusions only ever veto keywords: alone they do nothing, as in the Go gateway.
            if !spec.keywords.is_empty() {
                for e in &spec.exclude {
                    intern(e, i, true);
                }
            }
            rules.push(Rule {
                has_keywords: !spec.keywords.is_empty(),
                has_tools: spec.has_tools,
                system_prompt_contains: spec.system_prompt_contains.as_ref().map(|s| s.to_lowercase()),
                max_tokens_lt: spec.max_tokens_lt,
                message_length_lt: spec.message_length_lt,
                route: spec.route,
            });
        }
        let scanner = match texts.len() {
            0 => None,
            n if n <= FEW_PATTERNS => Some(Scanner::Few(
                texts.iter().map(|t| memchr::memmem::Finder::new(t.as_bytes()).into_owned()).collect(),
            )),
            _ => {
                let mut automata = Vec::with_capacity(texts.len().div_ceil(CHUNK));
                for (i, chunk) in texts.chunks(CHUNK).enumerate() {
                    automata.push((i * CHUNK, AhoCorasick::builder().match_kind(MatchKind::Standard).build(chunk)?));
                }
                Some(Scanner::Many(automata))
            }
        };
        Ok(Self { scanner, patterns, rules })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The first rule that matches the request, if any.
    pub fn decide(&self, req: &RequestView) -> Option<Decision> {
        let words = self.rules.len().div_ceil(64);
        let mut hit = vec![0u64; words];
        let mut vetoed = vec![0u64; words];
        if let Some(scanner) = &self.scanner {
            let text = lowered_user_text(req);
            let bytes = text.as_bytes();
            scanner.each_match(bytes, |id, start, end| {
                let p = &self.patterns[id];
                if p.word_start && start > 0 && is_word(bytes[start - 1]) {
                    return;
                }
                if p.word_end && end < bytes.len() && is_word(bytes[end]) {
                    return;
                }
                for &r in &p.keyword_of {
                    hit[r as usize / 64] |= 1 << (r % 64);
                }
                for &r in &p.exclusion_of {
                    vetoed[r as usize / 64] |= 1 << (r % 64);
                }
            });
        }
        let bit = |set: &[u64], i: usize| set[i / 64] & (1 << (i % 64)) != 0;
        let mut length: Option<u64> = None;
        let mut systems: Option<Vec<String>> = None;
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.has_tools.is_some_and(|want| want != req.has_tools) {
                continue;
            }
            if let Some(lt) = rule.max_tokens_lt
                && req.max_tokens.is_none_or(|m| m >= lt)
            {
                continue;
            }
            if let Some(lt) = rule.message_length_lt {
                let len = *length.get_or_insert_with(|| req.messages.iter().map(|m| m.text.len() as u64).sum());
                if len >= lt {
                    continue;
                }
            }
            if rule.has_keywords && (!bit(&hit, i) || bit(&vetoed, i)) {
                continue;
            }
            if let Some(needle) = &rule.system_prompt_contains {
                let systems = systems.get_or_insert_with(|| {
                    req.messages.iter().filter(|m| m.role == "system").map(|m| m.text.to_lowercase()).collect()
                });
                if !systems.iter().any(|s| s.contains(needle.as_str())) {
                    continue;
                }
            }
            return Some(Decision { rule: i, route: rule.route });
        }
        None
    }
}

/// Every user message, lowercased and joined with spaces (earlier turns included, as the
/// Go gateway does). Lowercasing the text once lets the automaton run case-sensitively, which
/// keeps its fast literal prefilter.
fn lowered_user_text(req: &RequestView) -> String {
    let users = req.messages.iter().filter(|m| m.role.eq_ignore_ascii_case("user"));
    let mut out = String::with_capacity(users.clone().map(|m| m.text.len() + 1).sum());
    for (i, m) in users.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if m.text.is_ascii() {
            let start = out.len();
            out.push_str(&m.text);
            out[start..].make_ascii_lowercase();
        } else {
            out.push_str(&m.text.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(words: &[&str], route: RouteId) -> RuleSpec {
        RuleSpec { keywords: words.iter().map(|s| s.to_string()).collect(), route, ..Default::default() }.normalized()
    }

    fn user(text: &str) -> RequestView<'_> {
        RequestView { messages: vec![Message { role: "user", text: text.into() }], ..Default::default() }
    }

    fn route(rules: &[RuleSpec], req: &RequestView) -> Option<RouteId> {
        Heuristics::compile(rules).unwrap().decide(req).map(|d| d.route)
    }

    #[test]
    fn keywords_are_case_insensitive_whole_words() {
        let rules = [kw(&["translate"], 1)];
        assert_eq!(route(&rules, &user("Please TRANSLATE this")), Some(1));
        assert_eq!(route(&rules, &user("translate")), Some(1));
        assert_eq!(route(&rules, &user("translated text")), None);
        assert_eq!(route(&rules, &user("mistranslate")), None);
        assert_eq!(route(&rules, &user("(translate)")), Some(1));
        assert_eq!(route(&rules, &user("translate_me")), None);
    }

    #[test]
    fn boundaries_only_at_word_character_edges() {
        let rules = [kw(&["c++"], 1), kw(&["c#"], 2)];
        assert_eq!(route(&rules, &user("I like c++.")), Some(1));
        assert_eq!(route(&rules, &user("I like c++code")), Some(1));
        assert_eq!(route(&rules, &user("abc++")), None);
        assert_eq!(route(&rules, &user("writing C# now")), Some(2));
    }

    #[test]
    fn non_ascii_text_and_keywords() {
        let rules = [kw(&["übersetze"], 1), kw(&["café"], 2), kw(&["daten"], 3)];
        assert_eq!(route(&rules, &user("Bitte ÜBERSETZE das")), Some(1));
        // No boundary at a non-ASCII edge: substring matching there, as in the Go gateway.
        assert_eq!(route(&rules, &user("xübersetze")), Some(1));
        // ASCII-only boundaries: a non-ASCII neighbour counts as a boundary, like Go's \b.
        assert_eq!(route(&rules, &user("Ädaten")), Some(3));
        assert_eq!(route(&rules, &user("xdaten")), None);
        assert_eq!(route(&rules, &user("CAFÉ au lait")), Some(2));
        assert_eq!(route(&rules, &user("cafés")), Some(2));
    }

    #[test]
    fn a_failed_boundary_does_not_hide_a_later_occurrence() {
        let rules = [kw(&["go"], 1)];
        assert_eq!(route(&rules, &user("gopher says go")), Some(1));
        assert_eq!(route(&rules, &user("gopher ago")), None);
    }

    #[test]
    fn multi_word_keywords_and_overlaps() {
        let rules = [kw(&["code block"], 1), kw(&["block"], 2)];
        assert_eq!(route(&rules, &user("a Code  Block")), Some(2));
        assert_eq!(route(&rules, &user("a code block")), Some(1));
    }

    #[test]
    fn exclusions_veto_and_need_keywords() {
        let mut r = kw(&["translate"], 1);
        r.exclude = vec!["code block".into()];
        let alone = RuleSpec { exclude: vec!["anything".into()], route: 2, ..Default::default() };
        let rules = [r, alone];
        assert_eq!(route(&rules, &user("translate this code block")), Some(2));
        assert_eq!(route(&rules, &user("translate this")), Some(1));
        assert_eq!(route(&rules, &user("anything")), Some(2));
    }

    #[test]
    fn only_user_messages_are_searched_all_turns_joined() {
        let rules = [kw(&["hello world"], 1)];
        let req = RequestView {
            messages: vec![
                Message { role: "system", text: "hello world".into() },
                Message { role: "User", text: "say hello".into() },
                Message { role: "assistant", text: "ok".into() },
                Message { role: "user", text: "world".into() },
            ],
            ..Default::default()
        };
        assert_eq!(route(&rules, &req), Some(1));
        let only_system = RequestView {
            messages: vec![Message { role: "system", text: "hello world".into() }],
            ..Default::default()
        };
        assert_eq!(route(&rules, &only_system), None);
    }

    #[test]
    fn conditions_are_anded_and_first_match_wins() {
        let both = RuleSpec { max_tokens_lt: Some(100), message_length_lt: Some(10), route: 1, ..Default::default() };
        let tools = RuleSpec { has_tools: Some(true), route: 2, ..Default::default() };
        let system = RuleSpec { system_prompt_contains: Some("Code Assistant".into()), route: 3, ..Default::default() };
        let rules = [both, tools, system];
        let mut req = user("short");
        assert_eq!(route(&rules, &req), None, "max_tokens absent never matches");
        req.max_tokens = Some(50);
        assert_eq!(route(&rules, &req), Some(1));
        req.max_tokens = Some(100);
        assert_eq!(route(&rules, &req), None, "strictly below");
        req.has_tools = true;
        req.max_tokens = Some(10);
        assert_eq!(route(&rules, &req), Some(1), "first match wins");
        req.max_tokens = None;
        assert_eq!(route(&rules, &req), Some(2));
        req.has_tools = false;
        req.messages.push(Message { role: "system", text: "You are a CODE assistant.".into() });
        assert_eq!(route(&rules, &req), Some(3));
        req.messages[1].role = "System";
        assert_eq!(route(&rules, &req), None, "system role compared exactly");
    }

    #[test]
    fn message_length_counts_bytes_of_all_messages() {
        let rules = [RuleSpec { message_length_lt: Some(6), route: 1, ..Default::default() }];
        assert_eq!(route(&rules, &user("héllo")), None, "6 bytes");
        assert_eq!(route(&rules, &user("hello")), Some(1));
    }

    #[test]
    fn many_patterns_use_the_automaton_with_the_same_semantics() {
        let mut rules: Vec<RuleSpec> = (0..FEW_PATTERNS).map(|i| kw(&[&format!("filler{i}")], 9)).collect();
        rules.push(kw(&["a.a"], 1));
        rules.push(kw(&["go"], 2));
        let h = Heuristics::compile(&rules).unwrap();
        assert!(matches!(h.scanner, Some(Scanner::Many(_))));
        let route = |t: &str| h.decide(&user(t)).map(|d| d.route);
        assert_eq!(route("xa.a.a"), Some(1), "the overlapping second occurrence meets the boundaries");
        assert_eq!(route("xababa"), None);
        assert_eq!(route("gopher ago"), None);
        assert_eq!(route("gopher says GO"), Some(2));
        let words: Vec<String> = (0..2 * CHUNK + 1).map(|i| format!("w{i}")).collect();
        let mut big = vec![RuleSpec { keywords: words, route: 3, ..Default::default() }.normalized()];
        big.push(kw(&["last"], 4));
        let chunked = Heuristics::compile(&big).unwrap();
        assert!(matches!(&chunked.scanner, Some(Scanner::Many(a)) if a.len() == 3));
        let route = |t: &str| chunked.decide(&user(t)).map(|d| d.route);
        assert_eq!(route("say w16384"), Some(3), "a keyword of the last automaton");
        assert_eq!(route("say w1 and w16383"), Some(3));
        assert_eq!(route("the last one"), Some(4));
        assert_eq!(route("w163840"), None);
        let few = Heuristics::compile(&rules[FEW_PATTERNS..]).unwrap();
        assert!(matches!(few.scanner, Some(Scanner::Few(_))));
        assert_eq!(few.decide(&user("xa.a.a")).map(|d| d.route), Some(1));
    }

    #[test]
    fn a_rule_without_conditions_matches_everything() {
        assert_eq!(route(&[RuleSpec::default()], &user("")), Some(0));
    }

    #[test]
    fn shadowing() {
        let general = kw(&["translate", "translation"], 1);
        let narrower = kw(&["Translate"], 2);
        let wider = kw(&["translate", "convert"], 2);
        assert!(narrower.shadowed_by(&general));
        assert!(!wider.shadowed_by(&general));
        assert!(general.shadowed_by(&RuleSpec::default()));
        let mut excluded = general.clone();
        excluded.exclude = vec!["code".into()];
        let excluded = excluded.normalized();
        assert!(!narrower.shadowed_by(&excluded));
        let small = RuleSpec { max_tokens_lt: Some(50), route: 2, ..Default::default() };
        let big = RuleSpec { max_tokens_lt: Some(100), route: 1, ..Default::default() };
        assert!(small.shadowed_by(&big));
        assert!(!big.shadowed_by(&small));
    }
}
