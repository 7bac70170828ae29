//! `codegenie agent ...`: helpers run inside a scenario container through
//! `docker exec` (hidden). The arguments are the runtime's own
//! [`AgentCommand`], which also renders them.

use clap::Args;
use codegenie_runtime::runtime_trace::agent::AgentCommand;

use super::CliError;

/// Arguments of `codegenie agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The helper to run.
    #[command(subcommand)]
    pub command: AgentCommand,
}

pub(super) fn run(args: AgentArgs) -> Result<u8, CliError> {
    let stdout = std::io::stdout();
    args.command.run(&mut stdout.lock())?;
    Ok(0)
}
