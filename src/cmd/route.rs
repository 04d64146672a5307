//! `llm-gateway route [CONFIG] PROMPT`: the whole cascade for one prompt — every layer, every
//! route's score, the decision and why — and `route [CONFIG] --eval FILE`: a labelled set
//! (`route<TAB>prompt` lines) through the exact request-time cascade, with accuracy, per-route
//! precision and recall, the confusion matrix, and the threshold that would have scored best.
//! Offline with the builtin embedder (a remote embedder or classifier is called as `run`
//! would).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use llm_gateway_compiler::keywords::{Message, RequestView};
use llm_gateway_compiler::plan::RoutingPlan;

use crate::cli::RouteArgs;
use crate::exit;
use crate::state::{Live, Probe};

type Failure = (u8, String);

pub fn run(args: RouteArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    match runtime.block_on(execute(&args)) {
        Ok(code) => exit::code(code),
        Err((code, message)) => {
            eprintln!("error: {message}");
            exit::code(code)
        }
    }
}

async fn execute(args: &RouteArgs) -> Result<u8, Failure> {
    let (config, prompt) = match (args.eval.is_some() || args.messages.is_some(), args.args.as_slice()) {
        (true, []) => (PathBuf::from("config.yaml"), None),
        (true, [config]) => (PathBuf::from(config), None),
        (false, [prompt]) => (PathBuf::from("config.yaml"), Some(prompt.clone())),
        (false, [config, prompt]) => (PathBuf::from(config), Some(prompt.clone())),
        _ => return Err((exit::USAGE, "give [CONFIG] PROMPT, or [CONFIG] with --eval or --messages".into())),
    };
    let live = load(&config).await?;
    let routing =
        live.plan.routing.as_ref().ok_or((exit::CONFIG, format!("{} has no `routing` section", config.display())))?;
    if let Some(file) = &args.eval {
        return eval(&live, routing, file, args.min_accuracy).await;
    }
    let request = match (&args.messages, prompt) {
        (Some(file), _) => Request::from_body(&read(file)?)?,
        (None, Some(text)) => Request { messages: vec![("user".into(), text)], max_tokens: None, tools: false },
        (None, None) => return Err((exit::USAGE, "give a PROMPT".into())),
    };
    explain(&live, routing, &request).await;
    Ok(exit::OK)
}

async fn load(path: &Path) -> Result<Live, Failure> {
    let (name, source) =
        super::read_config(path).map_err(|e| (exit::NO_INPUT, format!("cannot read {}: {e}", path.display())))?;
    let loaded = crate::config::load(path, &name, source);
    let Some(plan) = loaded.plan else {
        return Err((exit::CONFIG, format!("{name} has errors:\n{}", loaded.render())));
    };
    let (live, _) = Live::build(plan, None, Probe::Never).await.map_err(|e| (exit::CONFIG, e))?;
    Ok(live)
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| (exit::NO_INPUT, format!("cannot read {}: {e}", path.display())))
}

/// What the cascade reads of a request.
struct Request {
    /// `(role, text)`, system prompts included.
    messages: Vec<(String, String)>,
    max_tokens: Option<u64>,
    tools: bool,
}

impl Request {
    /// A request body of any dialect (Chat `messages`, Messages `system` + `messages`,
    /// Responses `instructions` + `input`).
    fn from_body(body: &str) -> Result<Self, Failure> {
        let parsed = crate::request::parse(body.as_bytes()).map_err(|e| (exit::DATA, e.message))?;
        let dialect = if parsed.probe.input.is_some() {
            crate::dialect::Dialect::Responses
        } else if parsed.probe.system.is_some() {
            crate::dialect::Dialect::Messages
        } else {
            crate::dialect::Dialect::Chat
        };
        Ok(Self {
            messages: crate::trace::role_texts(&parsed, dialect),
            max_tokens: parsed.max_tokens(),
            tools: parsed.has_tools(),
        })
    }

    /// A line of an evaluation file: `[tools] [system=...] [max_tokens=N] prompt`.
    fn from_line(mut text: &str) -> Result<Self, String> {
        let mut request = Request { messages: Vec::new(), max_tokens: None, tools: false };
        while let Some(rest) = text.strip_prefix('[') {
            let (flag, after) = rest.split_once("] ").ok_or("a flag closes with `] `")?;
            match flag.split_once('=') {
                Some(("system", s)) => request.messages.push(("system".into(), s.into())),
                Some(("max_tokens", n)) => {
                    request.max_tokens = Some(n.parse().map_err(|_| format!("bad max_tokens `{n}`"))?)
                }
                None if flag == "tools" => request.tools = true,
                _ => return Err(format!("unknown flag [{flag}]")),
            }
            text = after;
        }
        request.messages.push(("user".into(), text.into()));
        Ok(request)
    }

    fn view(&self) -> RequestView<'_> {
        RequestView {
            messages: self.messages.iter().map(|(role, text)| Message { role, text: text.as_str().into() }).collect(),
            max_tokens: self.max_tokens,
            has_tools: self.tools,
        }
    }

    fn last_user(&self) -> Option<&str> {
        self.messages.iter().rev().find(|(role, _)| role == "user").map(|(_, t)| t.as_str())
    }
}

/// The semantic layer's view of a prompt: every route's score, best first.
async fn semantic_scores(live: &Live, routing: &RoutingPlan, request: &Request) -> Result<Vec<(usize, f32)>, String> {
    let (Some((semantic, vectors)), Some(text)) = (crate::embed::vectors(routing), request.last_user()) else {
        return Ok(Vec::new());
    };
    let query = crate::embed::prompt(semantic, &live.pools, text).await?;
    let mut scores = vectors.scores(&query, semantic.comparison);
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(scores)
}

async fn explain(live: &Live, routing: &RoutingPlan, request: &Request) {
    let name = |id: usize| routing.routes[id].name.as_str();
    match &routing.heuristics {
        None => println!("heuristics: off"),
        Some(h) => match h.decide(&request.view()) {
            Some(d) => println!("heuristics: rule {} matches → route {}", d.rule, name(d.route)),
            None => println!("heuristics: no rule matches"),
        },
    }
    match &routing.semantic {
        None => println!("semantic: off"),
        Some(s) => {
            println!(
                "semantic ({}, {}): threshold {:.2}{}, ambiguous_threshold {:.2}{}",
                s.provider.as_str(),
                s.comparison.as_str(),
                s.threshold,
                if s.threshold_span.is_none() { " (derived)" } else { "" },
                s.ambiguous_threshold,
                if s.ambiguous_span.is_none() { " (derived)" } else { "" },
            );
            match semantic_scores(live, routing, request).await {
                Ok(scores) => {
                    for (i, (id, score)) in scores.iter().enumerate() {
                        let score64 = f64::from(*score);
                        let verdict = match i {
                            0 if *score > 0.0 && score64 >= s.threshold => "  ← at or above the threshold",
                            0 if *score > 0.0 && score64 >= s.ambiguous_threshold && routing.classifier.is_some() => {
                                "  ← ambiguous: the classifier decides"
                            }
                            0 => "  ← the best, below the threshold",
                            _ => "",
                        };
                        println!("  {:<16} {score:>6.2}{verdict}", name(*id));
                    }
                }
                Err(e) => println!("  embedding failed: {e}"),
            }
        }
    }
    if routing.classifier.is_some() {
        println!("classifier: asked only when the layers above leave it ambiguous (see the decision)");
    }
    let view = || request.view();
    match crate::route::resolve(&live.plan, &live.pools, None, &view, None).await {
        Ok(t) => println!(
            "decision: route {} → model {} (method {}, confidence {:.2})\ncascade: [{}]",
            t.route.as_deref().unwrap_or("-"),
            t.model,
            t.method,
            t.confidence,
            t.cascade.join(", ")
        ),
        Err(e) => println!("decision: none ({})", e.message),
    }
}

/// One labelled prompt's outcome, with what a threshold sweep needs.
struct Outcome {
    want: usize,
    got: Option<usize>,
    /// The layer that decided (`heuristic`, `semantic`, `default`, …).
    method: &'static str,
    prompt: String,
    /// The heuristics' route, when a rule matched (it decides before any threshold).
    heuristic: Option<usize>,
    /// The semantic layer's best route and score.
    best: Option<(usize, f32)>,
}

async fn eval(live: &Live, routing: &RoutingPlan, file: &Path, min_accuracy: Option<f64>) -> Result<u8, Failure> {
    let text = read(file)?;
    let index = |name: &str| routing.routes.iter().position(|r| r.name == name);
    let mut outcomes = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
        let bad = |why: String| (exit::DATA, format!("{}:{}: {why}", file.display(), n + 1));
        let (want, prompt) = line.split_once('\t').ok_or_else(|| bad("expected `route<TAB>prompt`".into()))?;
        let want = index(want).ok_or_else(|| bad(format!("unknown route `{want}`")))?;
        let request = Request::from_line(prompt).map_err(bad)?;
        let view = || request.view();
        let target = crate::route::resolve(&live.plan, &live.pools, None, &view, None).await.ok();
        let method = target.as_ref().map_or("none", |t| t.method);
        let got = target.and_then(|t| t.route).and_then(|r| index(&r));
        let heuristic = routing.heuristics.as_ref().and_then(|h| h.decide(&request.view())).map(|d| d.route);
        let best = semantic_scores(live, routing, &request).await.map_err(|e| (1, e))?.first().copied();
        outcomes.push(Outcome { want, got, method, prompt: prompt.to_owned(), heuristic, best });
    }
    if outcomes.is_empty() {
        return Err((exit::DATA, format!("{} has no labelled prompts", file.display())));
    }
    let accuracy = report(routing, &outcomes);
    match min_accuracy {
        Some(min) if accuracy < min => {
            println!("accuracy {:.1} % is below --min-accuracy {:.1} %", accuracy * 100.0, min * 100.0);
            Ok(1)
        }
        _ => Ok(exit::OK),
    }
}

/// How many misrouted prompts `--eval` lists.
const MISSES_SHOWN: usize = 40;

/// Prints the evaluation; returns the accuracy.
fn report(routing: &RoutingPlan, outcomes: &[Outcome]) -> f64 {
    let routes = &routing.routes;
    let correct = outcomes.iter().filter(|o| o.got == Some(o.want)).count();
    let accuracy = correct as f64 / outcomes.len() as f64;
    println!("accuracy: {correct}/{} = {:.1} %", outcomes.len(), accuracy * 100.0);
    let mut layers: Vec<&str> = outcomes.iter().map(|o| o.method).collect();
    layers.sort_unstable();
    layers.dedup();
    for layer in layers {
        let decided = outcomes.iter().filter(|o| o.method == layer);
        let (n, right) = decided.fold((0, 0), |(n, r), o| (n + 1, r + usize::from(o.got == Some(o.want))));
        println!("  decided by {layer:<10} {n:>5}, right {right:>5} ({:.1} %)", right as f64 * 100.0 / n as f64);
    }
    println!("  {:<16} {:>9} {:>9} {:>8}", "route", "precision", "recall", "prompts");
    for (id, r) in routes.iter().enumerate() {
        let chosen = outcomes.iter().filter(|o| o.got == Some(id)).count();
        let labelled = outcomes.iter().filter(|o| o.want == id).count();
        let hits = outcomes.iter().filter(|o| o.want == id && o.got == Some(id)).count();
        let pct =
            |n: usize, d: usize| if d == 0 { "-".to_owned() } else { format!("{:.1} %", n as f64 * 100.0 / d as f64) };
        println!("  {:<16} {:>9} {:>9} {:>8}", r.name, pct(hits, chosen), pct(hits, labelled), labelled);
    }
    println!("confusion matrix (rows: labelled route, columns: chosen route)");
    let width = routes.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    print!("  {:<width$}", "");
    for r in routes {
        print!(" {:>width$}", r.name);
    }
    println!(" {:>width$}", "none");
    for (want, r) in routes.iter().enumerate() {
        print!("  {:<width$}", r.name);
        for got in (0..routes.len()).map(Some).chain([None]) {
            let n = outcomes.iter().filter(|o| o.want == want && o.got == got).count();
            print!(" {n:>width$}");
        }
        println!();
    }
    let misses: Vec<&Outcome> = outcomes.iter().filter(|o| o.got != Some(o.want)).collect();
    if !misses.is_empty() {
        println!("misrouted (labelled → chosen, by):");
        let name = |r: Option<usize>| r.map_or("none", |r| routes[r].name.as_str());
        for o in misses.iter().take(MISSES_SHOWN) {
            println!("  {} → {} ({}): {}", routes[o.want].name, name(o.got), o.method, o.prompt);
        }
        if misses.len() > MISSES_SHOWN {
            println!("  … and {} more", misses.len() - MISSES_SHOWN);
        }
    }
    if let (Some(semantic), Some(default)) = (&routing.semantic, routing.default_route) {
        // Without a classifier the threshold only chooses between the nearest route and the
        // default route: replay that choice for every threshold.
        let score = |t: f64| {
            outcomes
                .iter()
                .filter(|o| {
                    let got =
                        o.heuristic.or_else(|| o.best.filter(|&(_, s)| f64::from(s) >= t && s > 0.0).map(|(r, _)| r));
                    got.unwrap_or(default) == o.want
                })
                .count()
        };
        let (best_t, best_n) = (0..=100)
            .map(|i| f64::from(i) / 100.0)
            .map(|t| (t, score(t)))
            .fold((0.0, 0), |a, b| if b.1 > a.1 { b } else { a });
        println!(
            "threshold: {:.2} scores {:.1} % (the current {:.2}: {:.1} %){}",
            best_t,
            best_n as f64 * 100.0 / outcomes.len() as f64,
            semantic.threshold,
            score(semantic.threshold) as f64 * 100.0 / outcomes.len() as f64,
            if routing.classifier.is_some() { " — replayed without the classifier" } else { "" }
        );
    }
    accuracy
}
