//! kurad: the kura edge cache daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kura::config;
use kura::daemon::{ConfSource, Daemon, Options, Stop};

#[derive(Parser)]
#[command(name = "kurad", version, about = "kura HTTP edge cache daemon")]
struct Cli {
    /// Directory holding server.xml, vhosts.xml and svc/.
    #[arg(long, global = true, default_value = config::DEFAULT_CONF_DIR)]
    conf_dir: PathBuf,
    /// Directory for state kept across restarts (SNMP indexes, configuration history).
    #[arg(long, global = true, default_value = "/var/lib/kura")]
    state_dir: PathBuf,
    /// Largest SNMP GETBULK reply in bytes (whole bindings; 484..=65507).
    #[arg(long, global = true, default_value_t = kura::snmp::agent::DEFAULT_BULK_BYTES)]
    snmp_bulk_bytes: usize,
    /// Directory of the global logs (info, sys, deny, originerror) and of vhost
    /// logs without `<Log Dir>` (each vhost in its own sub-directory).
    #[arg(long, global = true, default_value = kura::log::DEFAULT_LOG_DIR)]
    log_dir: PathBuf,
    /// Lines that may wait for the log writer, every log together; beyond, lines are dropped and counted.
    #[arg(long, global = true, default_value_t = kura::log::writer::DEFAULT_QUEUE, hide = true)]
    log_queue: usize,
    /// Seconds between monitoring log lines (the guide's five minutes; for tests).
    #[arg(long, global = true, default_value_t = 300, hide = true)]
    monitoring_log_secs: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

impl Cli {
    /// Daemon options; `log_dir` is `None` for the demo (no files, log trace only).
    fn options(&self, state_dir: Option<PathBuf>, log_dir: Option<PathBuf>) -> Options {
        Options {
            state_dir,
            snmp_bulk_bytes: self.snmp_bulk_bytes,
            log_dir,
            log_queue: self.log_queue,
            monitoring_log_every: std::time::Duration::from_secs(self.monitoring_log_secs.max(1)),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate the configuration without starting; exits 1 when it is invalid.
    Check,
    /// Run a demo vhost in front of a built-in origin, memory only, no files needed.
    Demo {
        /// Service address of the demo vhost.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Management port (on 127.0.0.1).
        #[arg(long, default_value_t = config::DEFAULT_MANAGER_PORT)]
        manager_port: u16,
    },
    /// Print the generated part of kurad(8) in roff: name, synopsis, options
    /// (packaging/build.sh appends the commands, signals and files).
    #[command(hide = true)]
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check) => return check(&cli.conf_dir),
        Some(Command::Man) => return man_page(),
        _ => {}
    }
    kura::log::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kurad: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // What must reach the disks and the logs was flushed by `run`; freeing a
    // store of millions of objects one by one would only delay the exit.
    std::mem::forget(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("kurad: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `kurad check`: every error on its own line as `file:line: <Element>: message`.
fn check(dir: &std::path::Path) -> ExitCode {
    match config::load_dir(dir) {
        Ok(c) => {
            println!(
                "{}: configuration OK ({} vhosts)",
                dir.display(),
                c.vhosts.len()
            );
            for u in &c.not_implemented {
                println!("{}: {}: recognised, not implemented", u.place, u.path);
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: {} error(s); configuration rejected",
                dir.display(),
                errors.0.len()
            );
            ExitCode::FAILURE
        }
    }
}

/// `kurad man`: kurad(8)'s title, NAME, SYNOPSIS, DESCRIPTION and OPTIONS from
/// the clap definitions, as `kuractl man` does for kuractl(1).
fn man_page() -> ExitCode {
    use clap::CommandFactory;
    use std::io::Write;
    type Section = fn(&clap_mangen::Man, &mut dyn Write) -> std::io::Result<()>;
    let man = clap_mangen::Man::new(Cli::command()).section("8");
    let sections: [Section; 4] = [
        clap_mangen::Man::render_name_section,
        clap_mangen::Man::render_synopsis_section,
        clap_mangen::Man::render_description_section,
        clap_mangen::Man::render_options_section,
    ];
    let mut page = Vec::new();
    let mut written = man.render_title(&mut page);
    for section in sections {
        let mut roff = Vec::new();
        written = written.and_then(|()| section(&man, &mut roff));
        // Each section repeats the page's two-line preamble (`.ie`/`.el .ds Aq`).
        for line in String::from_utf8_lossy(&roff).lines() {
            if !line.starts_with(".ie \\n(.g .ds Aq") && !line.starts_with(".el .ds Aq") {
                page.extend_from_slice(line.as_bytes());
                page.push(b'\n');
            }
        }
    }
    match written.and_then(|()| std::io::stdout().lock().write_all(&page)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kurad man: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let source = match cli.command {
        Some(Command::Demo {
            listen,
            manager_port,
        }) => {
            let origin = kura::demo::start_origin()
                .await
                .context("starting the demo origin")?;
            let (server, vhosts) = kura::demo::config(listen, manager_port, origin);
            let options = cli.options(None, None);
            let daemon = Daemon::start(ConfSource::embedded(&server, &vhosts), options).await?;
            let manager = daemon.start_manager().await?;
            let bound = daemon.bound_addrs().await.first().map_or(listen, |b| b.1);
            print!("{}", kura::demo::banner(bound, manager, origin));
            return wait_for_signals(daemon).await;
        }
        _ => ConfSource::Dir(cli.conf_dir.clone()),
    };
    let options = cli.options(Some(cli.state_dir.clone()), Some(cli.log_dir.clone()));
    let daemon = Daemon::start(source, options)
        .await
        .with_context(|| format!("configuration in {}", cli.conf_dir.display()))?;
    daemon.start_manager().await?;
    tracing::info!(version = kura::VERSION, "kurad ready");
    notify::send("READY=1");
    wait_for_signals(daemon).await
}

/// SIGHUP reloads; SIGUSR1 reopens the log files (after logrotate moved them);
/// SIGTERM, SIGINT and `/command/terminate` stop; `/command/restart` starts
/// kurad again in this process.
async fn wait_for_signals(daemon: Arc<Daemon>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut stopped = None;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                notify::send("RELOADING=1");
                if let Err(e) = daemon.reload().await {
                    tracing::error!("reload rejected; the previous configuration keeps serving:\n{e}");
                }
                notify::send("READY=1");
            }
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: reopening the log files");
                daemon.logs.reopen();
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            stop = daemon.stopped() => {
                if stop == Stop::Restart {
                    tracing::info!("kurad restarting");
                    daemon.close().await;
                    // The new kurad (same PID) sends READY=1 once it serves.
                    notify::send("RELOADING=1");
                    daemon.logs.flush(LOG_FLUSH_LIMIT);
                    return Err(restart());
                }
                stopped = Some(stop);
                break;
            }
        }
    }
    tracing::info!("kurad stopping");
    notify::send("STOPPING=1");
    daemon.close().await;
    daemon.logs.flush(LOG_FLUSH_LIMIT);
    match stopped {
        Some(Stop::DisksFailed) => anyhow::bail!(Stop::DisksFailed.as_str()),
        _ => Ok(()),
    }
}

/// How long a stop waits for queued log lines to reach their files.
const LOG_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Replaces this process by a new kurad with the same arguments. Sockets are
/// close-on-exec, so the new process binds its ports afresh; it returns only
/// when the exec fails.
fn restart() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let err = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec(),
        Err(e) => e,
    };
    anyhow::Error::new(err).context("restart: cannot start kurad again")
}

/// systemd's readiness protocol (`Type=notify`, sd_notify(3)): one datagram
/// with the new state to the unix socket in `$NOTIFY_SOCKET`, a path or an
/// abstract name written `@name`. Without the variable (not started by
/// systemd) nothing is sent; a failure is logged, never fatal.
mod notify {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    pub fn send(state: &str) {
        if let Some(socket) = std::env::var_os("NOTIFY_SOCKET") {
            if let Err(e) = send_to(&socket, state) {
                tracing::warn!("sd_notify {state:?} to {socket:?}: {e}");
            }
        }
    }

    pub fn send_to(socket: &OsStr, state: &str) -> std::io::Result<()> {
        let addr = match socket.as_bytes().strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            None => SocketAddr::from_pathname(socket)?,
        };
        UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn received(listener: &UnixDatagram) -> String {
            let mut buf = [0u8; 64];
            let n = listener.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }

        #[test]
        fn path_socket() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("notify");
            let listener = UnixDatagram::bind(&path).unwrap();
            send_to(path.as_os_str(), "READY=1").unwrap();
            assert_eq!(received(&listener), "READY=1");
        }

        #[test]
        fn abstract_socket() {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("kurad-notify-test-{}", std::process::id());
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            let listener = UnixDatagram::bind_addr(&addr).unwrap();
            send_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
            assert_eq!(received(&listener), "STOPPING=1");
        }
    }
}
