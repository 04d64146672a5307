//! `llm-gateway check`: compile each file with the same compiler `run` uses, print every
//! diagnostic, exit 0 / 78 / 66.

use std::process::ExitCode;

use llm_gateway_compiler::centroids::Calibration;
use llm_gateway_compiler::plan::RoutingPlan;
use llm_gateway_compiler::{Diagnostic, Diagnostics, Severity};
use serde_json::json;

use crate::cli::{CheckArgs, Format};
use crate::embed::calibration;
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
        let calibrated = if args.no_embed { None } else { embed(&mut loaded) };
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
            // The semantic layer's numbers belong to the config, the first report.
            let calibrated = calibrated.as_ref().filter(|_| std::ptr::eq(report, &loaded.reports[0]));
            match args.format {
                Format::Text => {
                    print!("{}", report.render());
                    if let Some(table) =
                        calibrated.filter(|_| args.verbose).and_then(|(routing, c)| calibration::table(routing, c))
                    {
                        print!("{table}");
                    }
                    println!("{}", summary(&report.name, diags, failed));
                }
                Format::Json => files.push(json!({
                    "file": report.name,
                    "ok": !failed,
                    "errors": diags.errors(),
                    "warnings": diags.warnings(),
                    "diagnostics": diags.locate(&report.name, &report.source),
                    "semantic": calibrated.and_then(|(routing, c)| calibration::json(routing, c)),
                })),
            }
        }
    }
    if args.format == Format::Json {
        println!("{}", json!({ "ok": status == exit::OK, "files": files, "exposed": exposed }));
    }
    exit::code(status)
}

/// Embeds the examples as `run` would; a failure becomes an error at `routing.semantic`, and
/// what the embedded examples say about the routes becomes warnings. Returns the routing
/// with its vectors and their calibration (for the table), computed once.
fn embed(loaded: &mut crate::config::Loaded) -> Option<(RoutingPlan, Calibration)> {
    let plan = loaded.plan.take()?;
    let span = plan.routing.as_ref().and_then(|r| r.semantic.as_ref()).map(|s| s.span.clone())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    match runtime.block_on(crate::state::Live::build(plan, None, crate::state::Probe::Never)) {
        Err(message) => {
            loaded.reports[0].diags.0.push(Diagnostic {
                severity: Severity::Error,
                path: "routing.semantic".into(),
                span,
                message,
                help: Some("`llm-gateway check --no-embed` skips this check".into()),
            });
            None
        }
        Ok((live, _)) => {
            let routing = std::sync::Arc::try_unwrap(live.plan).ok()?.routing?;
            let calibrated = calibration::of(&routing)?;
            let diags = &mut loaded.reports[0].diags;
            diags.0.extend(calibration::warnings(&routing, &calibrated));
            diags.sort();
            Some((routing, calibrated))
        }
    }
}

fn summary(name: &str, diags: &Diagnostics, failed: bool) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let verdict = if failed { "FAILED" } else { "ok" };
    format!("{name}: {verdict} ({}, {})", plural(diags.errors(), "error"), plural(diags.warnings(), "warning"))
}
