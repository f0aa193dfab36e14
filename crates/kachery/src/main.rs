//! The `kachery` binary: parses the command line, sets up logging, runs one command and turns
//! its outcome into an exit code. Everything else lives in the library crates.

mod cli;
mod commands;
mod exit;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kachery: failed to start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(run(cli.command));
    // Background tasks (daemons, sockets) must not keep the process alive after the command.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));

    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Hub(hub) => commands::hub::run(hub).await,
        Command::Node(node) => commands::node::run(node).await,
        Command::Channel(channel) => commands::channel::run(channel).await,
        Command::Login(login) => commands::login::run(login).await,
        Command::Store(args) => commands::files::store(args).await,
        Command::Load(args) => commands::files::load(args).await,
        Command::Cat(args) => commands::files::cat(args).await,
        Command::Feed(feed) => commands::feed::run(feed).await,
        Command::Demo(args) => commands::demo::run(args).await,
        Command::Task(task) => commands::task::run(task).await,
    }
}

/// Prints the error chain once, on one line, and picks the exit code.
fn report(err: &anyhow::Error) -> ExitCode {
    if exit::is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    eprintln!("kachery: {message}");
    ExitCode::from(exit::exit_code(err))
}

fn init_logging(verbose: u8) {
    let default_level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
