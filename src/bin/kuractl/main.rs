//! kuractl: the command-line client of kurad's management API.
//!
//! `cli` holds the command definitions (also the source of `--help`, the
//! completions and the man page), `client` the HTTP calls and what their
//! failures mean, `stats` the monitoring table, `conf` the configuration history,
//! `man` the man pages.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::Value;

mod cli;
mod client;
mod conf;
mod man;
mod stats;

use cli::{Cli, Command, ConfCommand, Targets, View, Window};
use client::{Client, Failure};
use stats::Table;

/// Escapes that clear the terminal and home the cursor before a `top` frame.
const CLEAR: &str = "\x1b[H\x1b[2J";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            f.report();
            f.exit_code()
        }
    }
}

/// Runs one command; a failure decides the exit code.
fn run(cli: Cli) -> Result<(), Failure> {
    let client = Client::new(cli.server.clone(), cli.timeout);
    match cli.command {
        Command::Check { conf_dir } => match kura::config::load_dir(&conf_dir) {
            Ok(c) => {
                let n = c.vhosts.len();
                println!("{}: configuration OK ({n} vhosts)", conf_dir.display());
                Ok(())
            }
            // The errors are placed (file:line: <Element>: message), one per line,
            // and listed as reload lists kurad's.
            Err(errors) => {
                let lines: Vec<String> = errors
                    .to_string()
                    .lines()
                    .map(|l| format!("  {l}"))
                    .collect();
                let dir = conf_dir.display();
                Err(Failure::Local(format!(
                    "{dir}: configuration rejected\n{}",
                    lines.join("\n")
                )))
            }
        },
        Command::Reload { json } => reload(&client, json),
        Command::Version => {
            let v = client.get("/version")?.json()?;
            println!("kurad {}", v["result"].as_str().unwrap_or("(unknown)"));
            Ok(())
        }
        Command::Status => {
            let table = Table::from_json(&client.get(&Window::LastSecond.path())?.json()?)?;
            print!("{}", stats::status(&cli.server, &table));
            Ok(())
        }
        Command::Purge(t) => content(&client, "purge", "", "purged", &t),
        Command::Expire {
            after: None,
            targets,
        } => content(&client, "expire", "", "expired", &targets),
        Command::Expire {
            after: Some(secs),
            targets,
        } => {
            // The guide: put sec first, or kurad may read it as part of the last URL.
            let sec = format!("sec={secs}&");
            content(&client, "expireafter", &sec, "set to expire", &targets)
        }
        Command::Hardpurge(t) => content(&client, "hardpurge", "", "hard-purged", &t),
        Command::Conf(c) => match c {
            ConfCommand::History { latest, json } => conf::history(&client, latest, json),
            ConfCommand::Restore { backup } => conf::restore(&client, &backup),
            ConfCommand::Download { backup, output } => {
                conf::download(&client, &backup, output.as_deref())
            }
            ConfCommand::Upload { file, field } => conf::upload(&client, &file, &field),
        },
        Command::Stats(args) => {
            let window = args.view.window.unwrap_or(Window::Minutes(5));
            let reply = client.get(&window.path())?;
            if args.json {
                print!("{}", reply.text());
                return Ok(());
            }
            print!("{}", table(&reply.json()?, &args.view)?.render(window));
            Ok(())
        }
        Command::Top {
            view,
            interval,
            count,
        } => top(&client, &view, interval, count),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "kuractl", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir: None } => {
            man::page(&mut std::io::stdout()).map_err(|e| Failure::Local(format!("stdout: {e}")))
        }
        Command::Man { dir: Some(dir) } => {
            man::write_all(&dir).map_err(|e| Failure::Local(format!("{}: {e}", dir.display())))
        }
    }
}

/// The table of a monitoring reply, narrowed to `--vhost` when given.
fn table(doc: &Value, view: &View) -> Result<Table, Failure> {
    let t = Table::from_json(doc)?;
    match &view.vhost {
        Some(v) => t.only(v),
        None => Ok(t),
    }
}

/// `top`: the stats table every `interval`, on a cleared screen when stdout is
/// a terminal, else one frame after another (no escapes in a pipe or a file).
fn top(
    client: &Client,
    view: &View,
    interval: std::time::Duration,
    count: Option<u64>,
) -> Result<(), Failure> {
    let window = view.window.unwrap_or(Window::LastSecond);
    let tty = std::io::stdout().is_terminal();
    let mut frame = 0;
    loop {
        let t = table(&client.get(&window.path())?.json()?, view)?;
        let text = t.render(window);
        let mut out = std::io::stdout().lock();
        let written = if tty {
            write!(out, "{CLEAR}{text}")
        } else {
            writeln!(out, "{text}")
        }
        .and_then(|()| out.flush());
        // A closed pipe (`kuractl top | head`) ends top quietly.
        if written.is_err() {
            return Ok(());
        }
        frame += 1;
        if count.is_some_and(|n| frame >= n) {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

/// `/conf/reload`: a one-line summary, or kurad's JSON as it is with `--json`.
/// A rejected configuration comes back as a 500 whose `errors` are printed.
fn reload(client: &Client, json: bool) -> Result<(), Failure> {
    let reply = client.get("/conf/reload")?;
    if json {
        print!("{}", reply.text());
        return Ok(());
    }
    let r = &reply.json()?["result"];
    let list = |k: &str| match r[k].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "none".into(),
    };
    println!(
        "configuration reloaded: generation {}, {} vhosts; opened {}; closed {}",
        r["generation"],
        r["vhosts"],
        list("opened"),
        list("closed")
    );
    Ok(())
}

/// What a purge target keeps literal: everything a URL path and query may hold
/// except what would end or split the `url=` value (`&`, `#`, `|` inside one
/// target, `+` that form decoders read as a space, `%` itself).
const TARGET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

/// The `url=` value for several targets: each encoded, joined by `|` (guide ch. 5).
fn targets_query(urls: &[String]) -> String {
    let encoded: Vec<String> = urls
        .iter()
        .map(|u| utf8_percent_encode(u, TARGET).to_string())
        .collect();
    format!("url={}", encoded.join("|"))
}

/// purge, expire, expireafter and hardpurge: `/command/<method>?<params>url=<targets>`,
/// `params` being empty or ending in `&`; `done` is the verb of the summary line.
fn content(
    client: &Client,
    method: &str,
    params: &str,
    done: &str,
    t: &Targets,
) -> Result<(), Failure> {
    let query = targets_query(&t.urls);
    let reply = client.get(&format!("/command/{method}?{params}{query}"))?;
    let v = reply.json()?;
    let r = &v["result"];
    match (r["Count"].as_u64(), r["Size"].as_i64(), r["Time"].as_u64()) {
        (Some(count), Some(size), Some(ms)) => {
            println!("{done} {count} objects ({}) in {ms} ms", stats::bytes(size))
        }
        _ => println!("{v:#}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_encoded_and_joined_with_bars() {
        let urls = [
            "www.site1.com/image1.jpg".to_string(),
            "/css/style.css".into(),
            "www.site2.com/page/*.html".into(),
        ];
        assert_eq!(
            targets_query(&urls),
            "url=www.site1.com/image1.jpg|/css/style.css|www.site2.com/page/*.html"
        );
        let odd = [
            "http://a.test/a b?x=1&y=2#f|g+h%".to_string(),
            "a.test/한".into(),
        ];
        assert_eq!(
            targets_query(&odd),
            "url=http://a.test/a%20b?x=1%26y=2%23f%7Cg%2Bh%25|a.test/%ED%95%9C"
        );
    }
}
