//! Process exit codes (sysexits.h where one fits), shared by every subcommand.

use std::process::ExitCode;

pub const OK: u8 = 0;
/// A command-line usage error (clap uses 2 too).
pub const USAGE: u8 = 2;
/// EX_DATAERR: an input file that is not what it should be (`keys import`'s users.json).
pub const DATA: u8 = 65;
/// EX_NOINPUT: a config file could not be read.
pub const NO_INPUT: u8 = 66;
/// EX_CONFIG: the config has errors (or warnings under `--deny-warnings`).
pub const CONFIG: u8 = 78;

pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}
