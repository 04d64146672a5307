#![forbid(unsafe_code)]

use std::process::ExitCode;

// glibc's allocator took an eighth of the gateway's CPU under load (perf: malloc, free and
// consolidation on every request's buffers and JSON values); mimalloc's per-thread pages
// make those calls a few nanoseconds each. Version 2 without transparent huge pages
// (Cargo.toml): version 3's defaults doubled peak RSS (3 MB answers translated: 130 MB vs 80).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    llm_gateway::cli::main()
}
