//! The `spikebus` binary: everything lives in the spikebus-app crate.

fn main() -> std::process::ExitCode {
    spikebus_app::cli::main()
}
