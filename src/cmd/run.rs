//! `llm-gateway run`: compile the config, then serve it.

use std::process::ExitCode;

use llm_gateway_compiler::{ProcessEnv, compile};

use crate::cli::RunArgs;
use crate::exit;

pub fn run(args: RunArgs) -> ExitCode {
    let (name, source) = match super::read_config(&args.config) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.config.display());
            return exit::code(exit::NO_INPUT);
        }
    };
    match compile(&source, &ProcessEnv) {
        Ok(compiled) => {
            eprint!("{}", compiled.warnings.render(&name, &source));
            eprintln!("error: the server is not built yet (config `{name}` is valid)");
            exit::code(1)
        }
        Err(diags) => {
            eprint!("{}", diags.render(&name, &source));
            eprintln!("error: {name} has {} error(s); not starting", diags.errors());
            exit::code(exit::CONFIG)
        }
    }
}
