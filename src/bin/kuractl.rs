//! kuractl: the command-line client of kurad's management API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kura::config;

#[derive(Parser)]
#[command(
    name = "kuractl",
    version,
    about = "Control a running kurad through its management API"
)]
struct Cli {
    /// Management address of kurad.
    #[arg(long, global = true, default_value = "127.0.0.1:10040")]
    server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration directory locally (same checks as kurad).
    Check {
        /// Directory holding server.xml and vhosts.xml.
        #[arg(long, default_value = config::DEFAULT_CONF_DIR)]
        conf_dir: PathBuf,
    },
    /// Ask kurad to reload its configuration (GET /conf/reload).
    Reload,
    /// Print kurad's version (GET /version).
    Version,
}

/// GETs `path` from the management API: (status, body).
fn get(server: &str, path: &str) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect(server).map_err(|e| format!("cannot connect to {server}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{server}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("{server}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    if text.is_empty() {
        return Err(format!(
            "{server} closed the connection (is this address in <Manager><Allow>?)"
        ));
    }
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    Ok((status, body))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = match cli.command {
        Command::Check { conf_dir } => {
            return match config::load_dir(&conf_dir) {
                Ok(c) => {
                    println!(
                        "{}: configuration OK ({} vhosts)",
                        conf_dir.display(),
                        c.vhosts.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Reload => "/conf/reload",
        Command::Version => "/version",
    };
    match get(&cli.server, path) {
        Ok((200, body)) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprint!("kuractl: {path} answered {status}\n{body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("kuractl: {e}");
            ExitCode::FAILURE
        }
    }
}
