//! `returns`: the event-sourced returns pipeline from the command line.

mod cmd;
mod config;
mod shutdown;

use clap::{Parser, Subcommand};

use crate::config::Global;

/// mimalloc instead of the system allocator: the pipeline allocates many small, short-lived
/// strings and buffers, which glibc's allocator serves slowly from several threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "returns",
    version,
    about = "Event-sourced returns across four teams, on an event log"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish returns and run all four teams in one process; report what each team did.
    Demo(cmd::demo::Args),
    /// Publish refund requests to `returnOrders` as User Support.
    Publish(cmd::publish::Args),
    /// Run one team until Ctrl-C or SIGTERM.
    Run(cmd::run::Args),
    /// Serve User Support's intake (POST /returns) with its relay and the five teams, until
    /// Ctrl-C or SIGTERM.
    Serve(cmd::serve::Args),
    /// Run the traditional and the event-sourced model side by side, under the same faults.
    Compare(cmd::compare::Args),
    /// One return's timeline across every team, or one team's own log, read from the event log.
    Audit(cmd::audit::Args),
    /// Where is my return? Each team's outcome, from User Support's status view.
    Status(cmd::status::Args),
    /// Usage statistics built from the events by the analytics subscriber.
    Stats(cmd::stats::Args),
    /// Rebuild a team's state from its own events into a fresh store and compare it with the
    /// live store.
    Replay(cmd::replay::Args),
    /// Defect rates per model and location, from the Quality team (a late subscriber).
    Quality(cmd::quality::Args),
    /// Dead-letter records: what the teams set aside and why.
    Dlq {
        #[command(subcommand)]
        command: cmd::dlq::Command,
    },
}

/// What a shell reports for a process killed by SIGPIPE (128 + 13).
const BROKEN_PIPE_EXIT: i32 = 141;

/// `returns ... | head`: when the reader goes, `println!` panics on the broken pipe. Like any
/// command-line tool, end quietly with the shell's SIGPIPE status instead of a panic message.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(BROKEN_PIPE_EXIT);
        }
        default(info);
    }));
}

fn main() -> std::process::ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RETURNS_TRACE")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour for a terminal only: a file or a pipe gets no escape codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => cmd::demo::run(&cli.global, args).await,
            Command::Publish(args) => cmd::publish::run(&cli.global, args).await,
            Command::Run(args) => cmd::run::run(&cli.global, args).await,
            Command::Serve(args) => cmd::serve::run(&cli.global, args).await,
            Command::Compare(args) => cmd::compare::run(&cli.global, args).await,
            Command::Audit(args) => cmd::audit::run(&cli.global, args).await,
            Command::Status(args) => cmd::status::run(&cli.global, args).await,
            Command::Stats(args) => cmd::stats::run(&cli.global, args).await,
            Command::Replay(args) => cmd::replay::run(&cli.global, args).await,
            Command::Quality(args) => cmd::quality::run(&cli.global, args).await,
            Command::Dlq { command } => cmd::dlq::run(&cli.global, command).await,
        }
    });
    // Work the command left behind on the blocking pool (a Kafka connect to a broker that does
    // not answer waits up to 15 s) must not hold up the exit after Ctrl-C.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once. The libraries' errors say their cause
/// in their own message (they are also logged and answered alone, where no chain is printed),
/// and some (rdkafka's) also return it as their source; so a cause whose text the line holds
/// already is left out, where `{:#}` would print it again.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that says its cause and returns it as its source too.
    #[derive(Debug)]
    struct Connect(std::io::Error);

    impl std::fmt::Display for Connect {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "connect failed: {}", self.0)
        }
    }

    impl std::error::Error for Connect {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_line_says_each_cause_once() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = anyhow::Error::new(Connect(refused)).context("cannot open the log");
        assert_eq!(
            format!("{e:#}"),
            "cannot open the log: connect failed: refused: refused"
        );
        assert_eq!(
            error_line(&e),
            "cannot open the log: connect failed: refused"
        );
        let plain = anyhow::anyhow!("disk full").context("cannot write");
        assert_eq!(error_line(&plain), "cannot write: disk full");
    }
}
