//! The `formulary` binary.

fn main() -> std::process::ExitCode {
    formulary::cli::main()
}
