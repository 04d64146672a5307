#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    llm_gateway::cli::main()
}
