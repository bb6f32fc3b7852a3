//! The man pages, generated from the clap definitions by clap_mangen, with
//! the exit codes as a proper EXIT STATUS section (clap_mangen would reflow
//! `--help`'s list into one paragraph under EXTRA).

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, EXIT_CODES};

/// kuractl(1): the page clap_mangen writes, less `--help`'s exit status
/// paragraph, plus an EXIT STATUS section with one entry per code.
pub fn page(w: &mut dyn Write) -> std::io::Result<()> {
    // No kuractl-help(1) is written: `help` is `--help`.
    let cmd = Cli::command()
        .after_help(None::<&str>)
        .disable_help_subcommand(true);
    clap_mangen::Man::new(cmd).render(w)?;
    writeln!(w, ".SH \"EXIT STATUS\"")?;
    for (code, meaning) in EXIT_CODES {
        // roff reads a backslash as an escape and "-" as a hyphen, not a minus.
        let text = meaning.replace('\\', "\\e").replace('-', "\\-");
        writeln!(w, ".TP\n\\fB{code}\\fR\n{text}")?;
    }
    Ok(())
}

/// kuractl.1 and kuractl-<command>.1 for every command (and `conf`'s) in `dir`,
/// so the SUBCOMMANDS references of kuractl.1 resolve once installed.
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building names the subcommands' pages kuractl-<command>.
    cmd.build();
    for sub in cmd.get_subcommands() {
        clap_mangen::generate_to(sub.clone(), dir)?;
    }
    let mut file = std::fs::File::create(dir.join("kuractl.1"))?;
    page(&mut file)?;
    file.flush()
}
