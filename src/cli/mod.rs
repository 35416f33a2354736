//! The `sdq` command line: argument parsing, exit codes, one-line errors, progress bars.
//! Each subcommand lives in its own file and is a thin layer over `sdq::bridge`.

mod info;
mod pack;
mod table;
mod unpack;
mod verify;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: `sdq verify` found a checksum, bound or byte mismatch.
pub const EXIT_VERIFY_FAILED: u8 = 1;
/// Exit code: bad usage (unknown option, conflicting options, unknown tensor, N ≤ d, …).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: an input file is not valid (not safetensors, not .sdq, corrupt, bad weights).
pub const EXIT_INVALID_INPUT: u8 = 3;
/// Exit code: an I/O failure (missing file, permission denied, disk full, …).
pub const EXIT_IO: u8 = 4;

const EXAMPLES: &str = "\
Examples:
  sdq pack model.safetensors -o model.sdq          # pcm, 5.0 bits per weight, certified bounds
  sdq info model.sdq                               # what is stored, and what it saves
  sdq verify model.sdq --against model.safetensors # checksums, bounds, raw bytes
  sdq unpack model.sdq -o restored.safetensors     # back to safetensors (original dtypes)

Exit codes: 0 ok, 1 verification failed, 2 bad usage, 3 invalid input file, 4 I/O failure.
Threads: -j/--threads N, or the RAYON_NUM_THREADS environment variable (default: one per core).
Full reference: docs/cli.md";

/// Frame quantization of neural-network weights: pack safetensors checkpoints into .sdq files
/// with a certified error bound for every weight vector.
#[derive(Debug, Parser)]
#[command(
    name = "sdq",
    version,
    arg_required_else_help = true,
    after_help = EXAMPLES,
    propagate_version = true
)]
struct Cli {
    /// No progress bars (they are drawn on stderr only when it is a terminal).
    #[arg(short, long, global = true)]
    quiet: bool,

    /// Worker threads for encoding and decoding [default: RAYON_NUM_THREADS if set, else one
    /// per core].
    #[arg(short = 'j', long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Pack(Box<pack::PackArgs>),
    Info(info::InfoArgs),
    Unpack(unpack::UnpackArgs),
    Verify(verify::VerifyArgs),
}

/// A failure: the file it concerns, the cause, and the exit code.
#[derive(Debug)]
pub struct Failure {
    file: Option<PathBuf>,
    cause: String,
    code: u8,
}

impl Failure {
    /// A library error about `file`, with the exit code its kind calls for.
    pub fn lib(file: &Path, e: sdq::Error) -> Self {
        use sdq::Error as E;
        let code = match &e {
            E::Io { .. } => EXIT_IO,
            E::Parameter(_) | E::NoSuchTensor(_) => EXIT_USAGE,
            // Frame sizes and level counts come from the options (`pack --frame-size`,
            // `--redundancy`, `--levels`): past a limit they are invalid option values. (A
            // file's own sizes past a limit are format errors, exit 3.)
            E::Limit { what, .. }
                if what.starts_with("frame size") || what.starts_with("levels") =>
            {
                EXIT_USAGE
            }
            _ => EXIT_INVALID_INPUT,
        };
        match e {
            // The I/O error names its own path (which may be the output, not `file`).
            E::Io { path, source } => Failure {
                file: Some(path),
                cause: source.to_string(),
                code,
            },
            e => Failure {
                file: Some(file.to_owned()),
                cause: e.to_string(),
                code,
            },
        }
    }

    /// A usage error not tied to a file.
    pub fn usage(cause: impl Into<String>) -> Self {
        Failure {
            file: None,
            cause: cause.into(),
            code: EXIT_USAGE,
        }
    }

    /// A verification failure about `file`.
    pub fn verify(file: &Path, cause: impl Into<String>) -> Self {
        Failure {
            file: Some(file.to_owned()),
            cause: cause.into(),
            code: EXIT_VERIFY_FAILED,
        }
    }

    fn print(&self) {
        let line = match &self.file {
            Some(f) => format!("sdq: {}: {}", f.display(), self.cause),
            None => format!("sdq: {}", self.cause),
        };
        eprintln!("{}", escape(&line));
    }
}

/// What a subcommand returns.
pub type CliResult = Result<(), Failure>;

/// Replaces control characters (and bidirectional overrides) with visible escapes, so that a
/// hostile tensor name or path cannot drive the terminal or break a line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            if (c as u32) < 0x100 {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The indicatif progress bar behind [`sdq::bridge::Progress`]: on stderr, only when stderr
/// is a terminal and `--quiet` is not given.
pub struct Bar {
    bar: Option<ProgressBar>,
    enabled: bool,
}

impl Bar {
    /// A bar that draws only if `enabled` and stderr is a terminal.
    pub fn new(quiet: bool) -> Self {
        Bar {
            bar: None,
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }
}

impl sdq::bridge::Progress for Bar {
    fn start(&mut self, what: &str, total: u64) {
        if !self.enabled || total < 2 {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {percent:>3}% {wide_msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what.to_owned());
        self.bar = Some(bar);
    }
    fn tensor(&mut self, name: &str) {
        if let Some(b) = &self.bar {
            b.set_message(escape(name));
        }
    }
    fn advance_by(&mut self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// Turns a clap error into one line (help and version are printed as they are).
fn clap_failure(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind as K;
    match e.kind() {
        K::DisplayHelp | K::DisplayVersion => {
            let _ = e.print();
            ExitCode::from(EXIT_OK)
        }
        K::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(EXIT_USAGE)
        }
        _ => {
            let text = e.render().to_string();
            // The first paragraph (the message and any indented continuation), on one line.
            let first: Vec<&str> = text
                .lines()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let joined = first.join(" ");
            let cause = joined.trim_start_matches("error: ").trim();
            let cause = if cause.is_empty() {
                "invalid arguments"
            } else {
                cause
            };
            let tip = text
                .lines()
                .find(|l| l.trim_start().starts_with("tip:"))
                .map(|l| format!("; {}", l.trim()))
                .unwrap_or_default();
            let command = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Usage: "))
                .map(|u| {
                    u.split_whitespace()
                        .take_while(|w| !w.starts_with(['[', '<', '-']))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "sdq".into());
            Failure::usage(format!("{cause}{tip} (see '{command} --help')")).print();
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Runs the command line and returns the exit code.
pub fn main() -> ExitCode {
    run_from(std::env::args_os())
}

/// Runs the command line on `args` (the first is the program's name) and returns the exit code
/// (examples/demo.rs shows the real output of `sdq pack`, `verify` and `unpack` through it).
pub fn run_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => return clap_failure(e),
    };
    if let Some(n) = cli.threads {
        set_threads(usize::from(n));
    }
    let result = match cli.command {
        Command::Pack(a) => pack::run(*a, cli.quiet),
        Command::Info(a) => info::run(a),
        Command::Unpack(a) => unpack::run(a, cli.quiet),
        Command::Verify(a) => verify::run(a, cli.quiet),
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(f) => {
            f.print();
            ExitCode::from(f.code)
        }
    }
}

/// Builds the global thread pool with `n` threads (before any parallel work starts).
#[cfg(feature = "parallel")]
fn set_threads(n: usize) {
    // Fails only if the pool was already built, which nothing does before this.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

/// Without the `parallel` feature everything runs on one thread.
#[cfg(not(feature = "parallel"))]
fn set_threads(_: usize) {}

/// Opens the checkpoint `input` of `sdq pack`, refusing an `output` that is the input or (for a
/// sharded checkpoint) its index or one of its shards, before any tensor is read.
pub fn open_checkpoint(
    input: &Path,
    output: &Path,
) -> Result<sdq::bridge::safetensors::Checkpoint, Failure> {
    let fail = |e| Failure::lib(input, e);
    sdq::bridge::refuse_output_over_input(output, [input]).map_err(fail)?;
    let ck = sdq::bridge::safetensors::Checkpoint::open(input).map_err(fail)?;
    sdq::bridge::refuse_output_over_input(output, ck.files()).map_err(fail)?;
    Ok(ck)
}

/// Writes `text` to stdout. A closed pipe (`sdq verify … | head -1`) is not an error: the rest
/// of the output is dropped and the command still ends with its own exit code.
pub fn out(text: &str) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    static CLOSED: AtomicBool = AtomicBool::new(false);
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    if o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .is_err()
    {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// [`out`] with a format string and a newline.
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::out("\n") };
    ($($t:tt)*) => { $crate::cli::out(&format!("{}\n", format_args!($($t)*))) };
}

/// Whether `path` is `-` (stdout).
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}
