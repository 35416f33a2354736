//! `sdq`: pack safetensors checkpoints into frame-quantized .sdq files, inspect, unpack and
//! verify them. See docs/cli.md.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
