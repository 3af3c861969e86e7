//! The `switchyard` binary: a thin CLI over the engine.
#![forbid(unsafe_code)]

mod bench;
mod cli;
mod dispatcher;
mod dlq_cmd;
mod mesh_call;
mod node;
mod pipeline;
mod process;
mod transforms;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    if let Some(n) = cli.worker_threads {
        process::set_worker_threads(n.into());
    }
    let result = match cli.command {
        cli::Command::Dispatcher(args) if args.detach => process::detach::spawn(&args),
        cli::Command::Dispatcher(args) => dispatcher::main(*args),
        cli::Command::Bench(command) => bench::main(command),
        cli::Command::Node(args) => node::main(args),
        cli::Command::Run(args) => pipeline::run::main(args),
        cli::Command::Validate(args) => pipeline::run::validate(args),
        cli::Command::Mesh(cli::MeshCommand::Call(args)) => mesh_call::main(*args),
        cli::Command::Dlq(command) => dlq_cmd::main(command),
        cli::Command::Plugins => plugins(),
        cli::Command::Completions(args) => cli::docs::completions(&args),
        cli::Command::Man => cli::docs::man(),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `switchyard dlq list | head`: the reader has what it wanted.
        Err(e) if process::stdout::reader_gone(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `switchyard plugins`: every source, transform and sink type, a heading
/// per kind, one `name  description` line each.
fn plugins() -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = process::stdout::stdout();
    let sources: Vec<_> = switchyard_sources::builtin().describe().collect();
    let transforms: Vec<_> = switchyard_transforms::builtin().describe().collect();
    let sinks: Vec<_> = switchyard_sinks::builtin().describe().collect();
    for (i, (heading, entries)) in [
        ("Sources:", sources),
        ("Transforms:", transforms),
        ("Sinks:", sinks),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{heading}")?;
        // Names padded to 12 (as the sinks always were), longer ones to fit.
        let width = entries
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(0)
            .max(12);
        for (name, description) in entries {
            writeln!(out, "{name:<width$} {description}")?;
        }
    }
    out.flush()?;
    Ok(())
}
