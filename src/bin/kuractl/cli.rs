//! kuractl's command line: one set of clap definitions from which the parser,
//! `--help`, the shell completions and the man page are all generated, so they
//! cannot disagree.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use kura::config;

/// Exit codes and their meaning: the source of `--help`'s "Exit status" and
/// the man page's EXIT STATUS section.
pub const EXIT_CODES: [(u8, &str); 4] = [
    (0, "success"),
    (
        1,
        "kurad answered an error (its message is printed; a 501 means the feature is not in \
         this kurad yet), a configuration check failed, or a local file could not be used",
    ),
    (2, "usage error (unknown command or option, bad value)"),
    (
        3,
        "kurad cannot be reached (connection refused, closed, timed out): usable in scripts",
    ),
];

/// `--help`'s closing "Exit status" list.
fn exit_status_help() -> String {
    let lines: Vec<String> = EXIT_CODES
        .iter()
        .map(|(code, meaning)| format!("  {code}  {meaning}"))
        .collect();
    format!("Exit status:\n{}", lines.join("\n"))
}

/// `stats --help`: what each column is and where it comes from.
const STATS_COLUMNS: &str = "\
Table of the monitoring numbers per vhost, and a TOTAL row for the whole server, read from
/monitoring/average?minutes=N (or /monitoring/realtime for the last second). Nothing is counted by
kuractl: every figure is the API's, or a sum of the API's.

Columns:
  REQS        client requests in the window
  REQ/S       client requests per second (kurad's per-second mean, rounded)
  HIT%        request hit ratio, BYTEHIT% byte hit ratio (may be negative), from the window's totals
  IN/S OUT/S  bytes per second received from and sent to clients (B, KB, MB: powers of 1024)
  P50ms P99ms client response time percentiles, in milliseconds
  ORIG-REQS   requests sent to origins in the window
  ORIG-ERRS   origin failures in the window: 5xx answers, connect failures, receive timeouts and
              connections closed mid-transfer
  ORIG-P99ms  origin response time, 99th percentile
A ratio or time shows - when the window has no request to compute it from.
Minute windows hold completed minutes only (default: 5m, as /monitoring/average).";

/// `top --help`.
const TOP_ABOUT: &str = "\
The stats table redrawn every --interval seconds (default: the last second's numbers), like top
or varnishstat; see `kuractl stats --help` for the columns. On a terminal each frame clears the
screen; into a pipe or a file, frames follow one another, separated by a blank line.";

#[derive(Parser, Debug)]
#[command(
    name = "kuractl",
    version,
    about = "Control and watch a running kurad through its management API",
    long_about = "Control and watch a running kurad through its management API \
                  (guide chapters 2, 3, 5 and 10). Data goes to stdout, errors to stderr.",
    after_help = exit_status_help()
)]
pub struct Cli {
    /// Management address of kurad: host[:port] or http://host[:port] (port 10040 when left out).
    #[arg(long, short = 's', global = true, default_value = "127.0.0.1:10040", value_parser = server_url)]
    pub server: String,
    /// Seconds to wait for kurad to connect and answer.
    #[arg(long, global = true, default_value = "30", value_parser = seconds)]
    pub timeout: Duration,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Version, uptime, state, vhosts and a one-line traffic summary (exit 3 when kurad is down).
    Status,
    /// Validate a configuration directory locally, with the checks kurad makes.
    Check {
        /// Directory holding server.xml and vhosts.xml.
        #[arg(long, default_value = config::DEFAULT_CONF_DIR)]
        conf_dir: PathBuf,
    },
    /// Apply edited configuration files (GET /conf/reload); prints the errors when rejected.
    Reload {
        /// Print kurad's JSON reply as it is.
        #[arg(long)]
        json: bool,
    },
    /// Print kurad's version (GET /version).
    Version,
    /// Invalidate cached URLs; they are fetched again, or kept if the origin fails (guide ch. 5).
    Purge(Targets),
    /// Expire cached URLs now, or --after SECS; the next access revalidates with the origin.
    Expire {
        /// Expire this many seconds from now instead (GET /command/expireafter?sec=).
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
        after: Option<u64>,
        /// What to expire.
        #[command(flatten)]
        targets: Targets,
    },
    /// Delete cached URLs for good: nothing is kept even if the origin fails.
    Hardpurge(Targets),
    /// Configuration history: history, restore, download, upload (guide ch. 3).
    #[command(subcommand)]
    Conf(ConfCommand),
    /// Table of the monitoring numbers per vhost: req/s, hit ratios, bytes/s, p50/p99, origin health.
    #[command(long_about = STATS_COLUMNS)]
    Stats(StatsArgs),
    /// The stats table redrawn every second, like top or varnishstat.
    #[command(long_about = TOP_ABOUT)]
    Top {
        /// What to show (default: the last second).
        #[command(flatten)]
        view: View,
        /// Seconds between frames.
        #[arg(long, default_value = "1", value_parser = seconds)]
        interval: Duration,
        /// Stop after this many frames (default: run until interrupted).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Print a shell completion script to stdout.
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
    /// Print kuractl's man page (roff) to stdout, or write every page into a directory.
    Man {
        /// Write kuractl.1 and one kuractl-<command>.1 per command here instead (for packaging).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The targets of purge, expire and hardpurge.
#[derive(Args, Debug)]
pub struct Targets {
    /// [http(s)://]host/path or a pattern (host/dir/*, host/*.jpg); a target without a host
    /// uses the host of the one before it.
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
}

/// `stats` options.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Which window and vhost.
    #[command(flatten)]
    pub view: View,
    /// Print the API's JSON (/monitoring/realtime or /monitoring/average) as it is.
    #[arg(long, conflicts_with = "vhost")]
    pub json: bool,
}

/// Which numbers a table shows.
#[derive(Args, Debug)]
pub struct View {
    /// Only this vhost (by name, any case).
    #[arg(long, value_name = "V")]
    pub vhost: Option<String>,
    /// Window: now or 1s (the last second), or Nm with N in 1..60 (the last N completed minutes).
    #[arg(long, value_name = "WINDOW", value_parser = Window::parse)]
    pub window: Option<Window>,
}

/// A statistics window, as `/monitoring/realtime` and `?minutes=` on
/// `/monitoring/average` offer them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last completed second.
    LastSecond,
    /// The last N completed minutes (1..=60).
    Minutes(u8),
}

impl Window {
    /// Parses `now`, `1s` or `Nm`.
    pub fn parse(s: &str) -> Result<Window, String> {
        if matches!(s, "now" | "1s") {
            return Ok(Window::LastSecond);
        }
        s.strip_suffix('m')
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|n| (1..=60).contains(n))
            .map(Window::Minutes)
            .ok_or_else(|| format!("{s:?}: use now, 1s, or 1m to 60m"))
    }

    /// The API path that reads this window.
    pub fn path(self) -> String {
        match self {
            Window::LastSecond => "/monitoring/realtime".into(),
            Window::Minutes(m) => format!("/monitoring/average?minutes={m}"),
        }
    }

    /// How the table's title names it.
    pub fn describe(self) -> String {
        match self {
            Window::LastSecond => "the last second".into(),
            Window::Minutes(1) => "the last completed minute".into(),
            Window::Minutes(m) => format!("the last {m} completed minutes"),
        }
    }
}

/// The base URL (`http://host:port`) of a `--server` value. The management port
/// speaks plain HTTP only, so an https:// address is refused here rather than
/// failing later as "cannot reach".
fn server_url(s: &str) -> Result<String, String> {
    if s.starts_with("https://") {
        return Err("the management API is plain HTTP: use host:port or http://host:port".into());
    }
    let authority = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
    // A port is whatever follows the last ':' outside an IPv6 literal's brackets.
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.contains(']'));
    let base = if has_port {
        format!("http://{authority}")
    } else {
        format!("http://{authority}:10040")
    };
    match base.parse::<http::Uri>() {
        Ok(uri) if uri.path() == "/" && uri.host().is_some_and(|h| !h.is_empty()) => Ok(base),
        _ => Err(format!("{s:?} is not host[:port]")),
    }
}

/// A whole number of seconds above 0 (a zero timeout or interval would spin or fail at once).
fn seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
        _ => Err(format!("{s:?} is not a whole number of seconds above 0")),
    }
}

/// `Conf` subcommands.
#[derive(Subcommand, Debug)]
pub enum ConfCommand {
    /// List the configuration backups, oldest first (GET /conf/history).
    History {
        /// Only the newest backup (GET /conf/latest).
        #[arg(long)]
        latest: bool,
        /// Print the API's JSON as it is.
        #[arg(long)]
        json: bool,
    },
    /// Roll back to a backup (GET /conf/restore), recorded as a new "restored" entry.
    Restore {
        /// The backup: its id (digits) or its 40-hex SHA-1 hash.
        backup: Backup,
    },
    /// Save a backup's archive (GET /conf/download).
    Download {
        /// The backup: its id (digits) or its 40-hex SHA-1 hash.
        backup: Backup,
        /// Where to write the .tgz; "-" for stdout (default: the name kurad gives, else HASH.tgz).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Upload a whole configuration archive and apply it (POST /conf/upload).
    Upload {
        /// The .tgz to upload, or a configuration directory (server.xml, vhosts.xml,
        /// svc/<vhost>/*.txt), packed as kurad archives it.
        file: PathBuf,
        /// Multipart field name (<Manager UploadMultipartName>).
        #[arg(long, default_value = "confile")]
        field: String,
    },
}

/// A configuration backup named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backup {
    /// `id=` of the history.
    Id(u64),
    /// `hash=`: 40 hex digits, upper case as the history writes it.
    Hash(String),
}

impl std::str::FromStr for Backup {
    type Err = String;

    fn from_str(s: &str) -> Result<Backup, String> {
        if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Backup::Hash(s.to_ascii_uppercase()));
        }
        s.parse()
            .map(Backup::Id)
            .map_err(|_| format!("{s:?} is neither an id (digits) nor a 40-hex SHA-1 hash"))
    }
}

impl Backup {
    /// The query naming it: `id=N` or `hash=H`.
    pub fn query(&self) -> String {
        match self {
            Backup::Id(n) => format!("id={n}"),
            Backup::Hash(h) => format!("hash={h}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn windows_parse_as_documented() {
        assert_eq!(Window::parse("now"), Ok(Window::LastSecond));
        assert_eq!(Window::parse("1s"), Ok(Window::LastSecond));
        assert_eq!(Window::parse("5m"), Ok(Window::Minutes(5)));
        assert_eq!(Window::parse("60m"), Ok(Window::Minutes(60)));
        for bad in ["0m", "61m", "5", "m", "2s", ""] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_addresses_get_a_scheme_and_the_default_port() {
        for (given, want) in [
            ("127.0.0.1:10040", "http://127.0.0.1:10040"),
            ("http://edge-01:9000/", "http://edge-01:9000"),
            ("edge-01", "http://edge-01:10040"),
            ("[::1]", "http://[::1]:10040"),
            ("[::1]:8", "http://[::1]:8"),
        ] {
            assert_eq!(server_url(given).as_deref(), Ok(want), "{given}");
        }
        for bad in ["https://edge-01", "edge-01/x", "", "a b:1"] {
            assert!(server_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_backup_is_an_id_or_a_hash() {
        assert_eq!("12".parse(), Ok(Backup::Id(12)));
        let h = "d62ca26f16fe7c66f81d215d8c52266ab70aa5c8";
        assert_eq!(h.parse(), Ok(Backup::Hash(h.to_ascii_uppercase())));
        assert!("D62CA26F".parse::<Backup>().is_err());
        assert!("-1".parse::<Backup>().is_err());
    }
}
