//! `llm-gateway check`: compile each file with the same compiler `run` uses, print every
//! diagnostic, exit 0 / 78 / 66.

use std::process::ExitCode;

use llm_gateway_compiler::{Diagnostic, Diagnostics, Severity};
use serde_json::json;

use crate::cli::{CheckArgs, Format};
use crate::exit;

pub fn run(args: CheckArgs) -> ExitCode {
    let mut status = exit::OK;
    let mut files = Vec::new();
    // Files holding secrets that other users can read (warnings, not errors).
    let mut exposed: Vec<String> = Vec::new();
    for path in &args.configs {
        let (name, source) = match super::read_config(path) {
            Ok(read) => read,
            Err(e) => {
                let message = format!("cannot read {}: {e}", path.display());
                match args.format {
                    Format::Text => eprintln!("error: {message}"),
                    Format::Json => {
                        files.push(json!({"file": path.display().to_string(), "ok": false, "error": message}))
                    }
                }
                status = exit::NO_INPUT;
                continue;
            }
        };
        let mut loaded = crate::config::load(path, &name, source);
        if !args.no_embed {
            embed(&mut loaded);
        }
        for w in &loaded.exposed {
            match args.format {
                Format::Text => eprintln!("warning: {w}"),
                Format::Json => exposed.push(w.clone()),
            }
        }
        if let Some(why) = &loaded.unreadable {
            match args.format {
                Format::Text => eprintln!("error: {why}"),
                Format::Json => files.push(json!({"file": name, "ok": false, "error": why})),
            }
            status = exit::NO_INPUT;
        }
        for report in &loaded.reports {
            let diags = &report.diags;
            let failed = diags.has_errors() || (args.deny_warnings && diags.warnings() > 0);
            if failed && status == exit::OK {
                status = exit::CONFIG;
            }
            match args.format {
                Format::Text => {
                    print!("{}", report.render());
                    println!("{}", summary(&report.name, diags, failed));
                }
                Format::Json => files.push(json!({
                    "file": report.name,
                    "ok": !failed,
                    "errors": diags.errors(),
                    "warnings": diags.warnings(),
                    "diagnostics": diags.locate(&report.name, &report.source),
                })),
            }
        }
    }
    if args.format == Format::Json {
        println!("{}", json!({ "ok": status == exit::OK, "files": files, "exposed": exposed }));
    }
    exit::code(status)
}

/// Embeds the examples as `run` would; a failure becomes an error at `routing.semantic`.
fn embed(loaded: &mut crate::config::Loaded) {
    let Some(plan) = loaded.plan.take() else { return };
    let Some(span) = plan.routing.as_ref().and_then(|r| r.semantic.as_ref()).map(|s| s.span.clone()) else {
        loaded.plan = Some(plan);
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let result = runtime.block_on(crate::state::Live::build(plan, None, crate::state::Probe::Never));
    if let Err(message) = result {
        loaded.reports[0].diags.0.push(Diagnostic {
            severity: Severity::Error,
            path: "routing.semantic".into(),
            span,
            message,
            help: Some("`llm-gateway check --no-embed` skips this check".into()),
        });
    }
}

fn summary(name: &str, diags: &Diagnostics, failed: bool) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let verdict = if failed { "FAILED" } else { "ok" };
    format!("{name}: {verdict} ({}, {})", plural(diags.errors(), "error"), plural(diags.warnings(), "warning"))
}
