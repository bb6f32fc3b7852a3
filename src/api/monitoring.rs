//! `/monitoring/realtime` and `/monitoring/average` (guide chapter 10) in
//! JSON and XML, both written from the catalog.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::daemon::Daemon;
use crate::stats::catalog::{self, Field};
use crate::stats::counter::Side;
use crate::stats::system::SYS_N;
use crate::stats::{Sample, Window};

/// Reply formats (`?type=JSON|XML`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON, the default.
    Json,
    /// XML: scalars as attributes, groups as child elements.
    Xml,
}

impl Format {
    /// Parses the `type` parameter (any case); `None` for anything else.
    pub fn parse(s: Option<&str>) -> Option<Format> {
        match s.map(str::to_ascii_lowercase).as_deref() {
            None | Some("json") => Some(Format::Json),
            Some("xml") => Some(Format::Xml),
            _ => None,
        }
    }
}

/// One block of values: the host or a vhost.
struct Block {
    /// `VirtualHost` name; `None` for the host.
    name: Option<String>,
    window: Sample,
    uptime: u64,
}

fn blocks(daemon: &Daemon, window: Window) -> (Block, Vec<Block>, Vec<Block>) {
    let host = Block {
        name: None,
        window: daemon.stats.host_window(window),
        uptime: daemon.started.elapsed().as_secs(),
    };
    let rt = daemon.runtime();
    let vhosts = rt
        .config
        .vhosts
        .iter()
        .filter_map(|v| daemon.stats.vhost(&v.name))
        .map(|s| Block {
            name: Some(s.name.clone()),
            window: s.window(window),
            uptime: s.created.elapsed().as_secs(),
        })
        .collect();
    let views = rt
        .config
        .views
        .iter()
        .map(|v| Block {
            name: Some(v.name.clone()),
            window: daemon.stats.view_window(&v.vhosts, window),
            uptime: host.uptime,
        })
        .collect();
    (host, vhosts, views)
}

fn values<'a>(fields: &'a [Field], b: &'a Block) -> impl Iterator<Item = (&'a str, i64)> + 'a {
    evaluated(fields, &b.window, b.uptime)
}

fn evaluated<'a, const K: usize>(
    fields: &'a [Field],
    window: &'a Sample<K>,
    uptime: u64,
) -> impl Iterator<Item = (&'a str, i64)> + 'a {
    fields
        .iter()
        .map(move |f| (f.name.as_str(), catalog::evaluate(f.source, window, uptime)))
}

fn json_group<'a>(vals: impl Iterator<Item = (&'a str, i64)>) -> Value {
    Value::Object(vals.map(|(k, v)| (k.to_string(), Value::from(v))).collect())
}

/// `"ResponseTime": {"Client": {"P50": ..}, "Origin": {..}}` (our addition).
fn json_response_time(b: &Block) -> Value {
    let mut m = Map::new();
    for (name, side) in [("Client", Side::Client), ("Origin", Side::Origin)] {
        m.insert(
            name.into(),
            json_group(values(catalog::response_time(side), b)),
        );
    }
    Value::Object(m)
}

/// The traffic block and the groups of one block, as JSON members.
fn json_block(m: &mut Map<String, Value>, b: &Block) {
    for (k, v) in values(catalog::traffic(), b) {
        m.insert(k.into(), v.into());
    }
}

fn json_system(sys: &Sample<SYS_N>) -> Value {
    let mut m = Map::new();
    for (group, fields) in catalog::system() {
        m.insert((*group).into(), json_group(evaluated(fields, sys, 0)));
        if *group == "Mem" {
            // Memory-only storage: no <Disk> yet, so the disk list is empty.
            let mut storage = Map::new();
            storage.insert("Disk".into(), Value::Array(Vec::new()));
            m.insert("Storage".into(), Value::Object(storage));
        }
    }
    Value::Object(m)
}

fn xml_system(x: &mut String, sys: &Sample<SYS_N>) {
    x.push_str("  <System>\n");
    for (group, fields) in catalog::system() {
        let _ = write!(x, "    <{group}");
        attrs(x, evaluated(fields, sys, 0));
        x.push_str("/>\n");
        if *group == "Mem" {
            x.push_str("    <Storage/>\n");
        }
    }
    x.push_str("  </System>\n");
}

/// The whole reply for a window.
pub fn render(daemon: &Daemon, window: Window, format: Format) -> String {
    let (host, vhosts, views) = blocks(daemon, window);
    let sys = daemon.stats.system.window(window);
    let name = daemon.runtime().config.server.name.clone();
    match format {
        Format::Json => {
            let mut h = Map::new();
            h.insert("Version".into(), crate::VERSION.into());
            h.insert("Name".into(), name.into());
            h.insert("State".into(), "Healthy".into());
            json_block(&mut h, &host);
            h.insert(
                "HttpCountSum".into(),
                json_group(values(catalog::http_count_sum(), &host)),
            );
            h.insert(
                "HttpRequestHitSum".into(),
                json_group(values(catalog::http_request_hit_sum(), &host)),
            );
            h.insert("System".into(), json_system(&sys));
            // A View has the same members as a VirtualHost (monitoring-fields.tsv).
            let named = |blocks: &[Block]| -> Value {
                let list: Vec<Value> = blocks
                    .iter()
                    .map(|b| {
                        let mut m = Map::new();
                        m.insert("Name".into(), b.name.clone().unwrap_or_default().into());
                        json_block(&mut m, b);
                        m.insert("ResponseTime".into(), json_response_time(b));
                        Value::Object(m)
                    })
                    .collect();
                list.into()
            };
            h.insert("VirtualHost".into(), named(&vhosts));
            h.insert("View".into(), named(&views));
            h.insert("ResponseTime".into(), json_response_time(&host));
            let mut root = Map::new();
            root.insert("Host".into(), Value::Object(h));
            format!("{:#}\n", Value::Object(root))
        }
        Format::Xml => {
            let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            let _ = write!(
                x,
                "<Host Version=\"{}\" Name=\"{}\" State=\"Healthy\"",
                crate::VERSION,
                escape(&name)
            );
            attrs(&mut x, values(catalog::traffic(), &host));
            x.push_str(">\n  <HttpCountSum");
            attrs(&mut x, values(catalog::http_count_sum(), &host));
            x.push_str("/>\n  <HttpRequestHitSum");
            attrs(&mut x, values(catalog::http_request_hit_sum(), &host));
            x.push_str("/>\n");
            xml_system(&mut x, &sys);
            for (tag, blocks) in [("VirtualHost", &vhosts), ("View", &views)] {
                for b in blocks {
                    let _ = write!(
                        x,
                        "  <{tag} Name=\"{}\"",
                        escape(b.name.as_deref().unwrap_or(""))
                    );
                    attrs(&mut x, values(catalog::traffic(), b));
                    x.push_str(">\n");
                    xml_response_time(&mut x, b, "    ");
                    let _ = writeln!(x, "  </{tag}>");
                }
            }
            xml_response_time(&mut x, &host, "  ");
            x.push_str("</Host>\n");
            x
        }
    }
}

/// `<ResponseTime Side="Client" P50=".." .../>` for each side (our addition).
fn xml_response_time(x: &mut String, b: &Block, indent: &str) {
    for (name, side) in [("Client", Side::Client), ("Origin", Side::Origin)] {
        let _ = write!(x, "{indent}<ResponseTime Side=\"{name}\"");
        attrs(x, values(catalog::response_time(side), b));
        x.push_str("/>\n");
    }
}

fn attrs<'a>(x: &mut String, vals: impl Iterator<Item = (&'a str, i64)>) {
    for (k, v) in vals {
        let _ = write!(x, " {k}=\"{v}\"");
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
