//! Configuration: the guide's element table, the spec's example config,
//! inheritance, and errors that name file, line and element.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use kura::config::{self, schema};

fn shared() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec");
    assert!(
        p.is_dir(),
        "../shared/spec must sit beside the repository (the product contract)"
    );
    p
}

#[test]
fn embedded_element_table_is_the_spec_table() {
    let spec = std::fs::read_to_string(shared().join("config-elements.tsv")).unwrap();
    let ours = include_str!("../src/config/elements.tsv");
    assert!(
        spec == ours,
        "src/config/elements.tsv differs from ../shared/spec/config-elements.tsv: copy it again"
    );
}

/// Builds a document that writes `path` (and attribute `attr`) with `value`.
fn document(path: &str, attr: Option<&str>, value: &str) -> String {
    let segs: Vec<&str> = path.split('/').collect();
    let mut open = String::new();
    let mut close = String::new();
    for (i, s) in segs.iter().enumerate() {
        let last = i == segs.len() - 1;
        let name_attr = if i == 1 && *s == "Vhost" && !(last && attr == Some("Name")) {
            " Name=\"t.test\""
        } else {
            ""
        };
        match (last, attr) {
            (true, Some(a)) => open.push_str(&format!("<{s}{name_attr} {a}=\"{value}\">")),
            (true, None) => open.push_str(&format!("<{s}{name_attr}>{value}")),
            _ => open.push_str(&format!("<{s}{name_attr}>")),
        }
        close = format!("</{s}>{close}");
    }
    format!("{open}{close}")
}

/// A value the table allows for a row: its default, else the first enum value, else a word.
fn sample(default: &str, values: &str) -> String {
    if !default.is_empty() && !default.contains(' ') {
        return default
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
    }
    schema::enum_values(values).map_or("1".to_string(), |v| v[0].to_string())
}

#[test]
fn every_documented_element_and_attribute_is_recognised() {
    let table = std::fs::read_to_string(shared().join("config-elements.tsv")).unwrap();
    let mut checked = 0;
    for row in table.lines().skip(1) {
        let f: Vec<&str> = row.split('\t').collect();
        let (file, path, kind, name, default, values) = (f[0], f[1], f[2], f[3], f[4], f[5]);
        if kind == "textfile" {
            assert!(schema::schema().text_files.contains(&name), "{name}");
            continue;
        }
        let attr = (kind == "attribute").then_some(name);
        let doc = document(path, attr, &sample(default, values));
        let root = kura::config::xml::parse(
            if file == "server.xml" {
                config::xml::ConfFile::Server
            } else {
                config::xml::ConfFile::Vhosts
            },
            &doc,
        )
        .unwrap_or_else(|e| panic!("{doc}: {e}"));
        let errors = schema::validate(&root);
        assert!(errors.is_empty(), "{path} {kind} {name}: {doc}: {errors:?}");
        // The same setting written inside a <Vhost> is recognised too.
        if let Some(rest) = path.strip_prefix("Server/VHostDefault/") {
            let doc = document(
                &format!("Vhosts/Vhost/{rest}"),
                attr,
                &sample(default, values),
            );
            let root = config::xml::parse(config::xml::ConfFile::Vhosts, &doc).unwrap();
            assert!(schema::validate(&root).is_empty(), "{doc}");
        }
        checked += 1;
    }
    assert!(checked > 350, "only {checked} rows");
}

/// The spec's example configuration, its `<Https>` files (`/usr/ssl...`) made by a
/// test CA under a temporary directory and the paths pointed there (same lines).
fn spec_example_with_certificates() -> (TestCa, tempfile::TempDir) {
    let ca = TestCa::new();
    let root = tempfile::tempdir().unwrap();
    for dir in ["ssl", "ssl_port"] {
        let d = root.path().join("usr").join(dir);
        std::fs::create_dir_all(&d).unwrap();
        let (cert, key) = ca.leaf(dir, "www.example.com", &["www.example.com"], true);
        std::fs::copy(cert, d.join("cert.pem")).unwrap();
        std::fs::copy(key, d.join("certkey.pem")).unwrap();
        std::fs::copy(ca.ca(), d.join("CA.pem")).unwrap();
    }
    let examples = shared().join("config-examples");
    let server = std::fs::read_to_string(examples.join("server.xml"))
        .unwrap()
        .replace(">/usr/ssl", &format!(">{}/usr/ssl", root.path().display()));
    let vhosts = std::fs::read_to_string(examples.join("vhosts.xml")).unwrap();
    std::fs::write(root.path().join("server.xml"), server).unwrap();
    std::fs::write(root.path().join("vhosts.xml"), vhosts).unwrap();
    (ca, root)
}

#[test]
fn the_spec_example_configuration_is_understood() {
    let (_ca, dir) = spec_example_with_certificates();
    let out = Command::new(kurad_bin())
        .args(["check", "--conf-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("configuration OK (3 vhosts)"), "{stdout}");
    assert!(!stdout.contains("unknown") && !stderr.contains("unknown"));
    // What is not implemented yet is listed with its place, never dropped silently.
    assert!(
        stdout.contains("server.xml:63: Server/Cache/MaxSockets: recognised, not implemented"),
        "{stdout}"
    );
    assert!(!stdout.contains("Indexing"), "<Indexing> is read: {stdout}");
    assert!(
        stdout.contains("Vhosts/URLRewrite: recognised, not implemented"),
        "{stdout}"
    );
    // What is implemented is not in that list.
    for implemented in [
        "Server/Cache/Storage/Disk",
        "Server/Cache/Storage/Disk@Quota",
        "Server/Cache/Storage@DiskFailSec",
        "Server/Cache/Cleanup",
        "Server/Host/ServiceAccess",
        "Server/Cache/DenyLog",
        "Vhosts/Vhost/Listen",
        "Vhosts/Vhost/Alias",
        "Options/ViaHeader",
        "OriginOptions/ConnectTimeout",
    ] {
        assert!(
            !stdout.contains(&format!("{implemented}: recognised")),
            "{implemented} is implemented: {stdout}"
        );
    }
}

fn check(server: &str, vhosts: &str) -> (bool, String) {
    kurad_check(conf_dir(server, vhosts).path())
}

const ORIGIN: &str = "<Origin><Address>127.0.0.1:9</Address></Origin>";

#[test]
fn errors_name_file_line_and_element() {
    let server = "<Server>\n<Host/>\n</Server>\n";
    let cases: &[(&str, &str)] = &[
        (
            "<Vhosts>\n  <Vhost Name=\"a\">\n    <Listen>*:99999</Listen>\n    <Origin><Address>1.1.1.1</Address></Origin>\n  </Vhost>\n</Vhosts>",
            "vhosts.xml:3: <Listen>: port 99999 out of range",
        ),
        (
            "<Vhosts>\n<Vhost Name=\"a\"><Origin><Address>1.1.1.1</Address></Origin></Vhost>\n<Vhost Name=\"A\"><Origin><Address>1.1.1.1</Address></Origin></Vhost>\n</Vhosts>",
            "vhosts.xml:3: <Vhost>: duplicate vhost name a",
        ),
        (
            "<Vhosts>\n<Vhost Name=\"a\"><Origin><Address>1.1.1.1</Address></Origin></Vhost>\n<Vhost Name=\"b\">\n<Alias>A</Alias><Origin><Address>1.1.1.1</Address></Origin></Vhost>\n</Vhosts>",
            "vhosts.xml:4: <Alias>: a is already used by vhost a",
        ),
        (
            "<Vhosts>\n<Vhost Name=\"a\" Status=\"Sleeping\"><Origin><Address>1.1.1.1</Address></Origin></Vhost>\n</Vhosts>",
            "vhosts.xml:2: <Vhost>: Status: unknown value \"Sleeping\"",
        ),
        (
            "<Vhosts>\n<Vhost Name=\"a\">\n<Options>\n<CaseSensitive>MAYBE</CaseSensitive>\n</Options>\n<Origin><Address>1.1.1.1</Address></Origin></Vhost>\n</Vhosts>",
            "vhosts.xml:4: <CaseSensitive>: unknown value \"MAYBE\" (expected one of ON, OFF)",
        ),
        (
            "<Vhosts>\n<Vhost Name=\"a\">\n<Lisen>*:80</Lisen>\n<Origin><Address>1.1.1.1</Address></Origin></Vhost>\n</Vhosts>",
            "vhosts.xml:3: <Lisen>: unknown element",
        ),
        ("<Vhosts>\n<Vhost Name=\"a\">\n</Vhost>\n</Vhosts>", "vhosts.xml:2: <Vhost>: vhost a has no <Origin><Address>"),
        (
            "<Vhosts>\n<Vhost Name=\"a\"><Origin><Address>1.1.1.1</Address></Origin></Vhost>\n<Default>b</Default>\n</Vhosts>",
            "vhosts.xml:3: <Default>: b is not the Name of any <Vhost>",
        ),
        (
            "<Vhosts>\n<Vhost Name=\"a\">\n<Origin><Address>1.1.1.1</Address></Origin>\n<Options><TTL><Res2xx>soon</Res2xx></TTL></Options>\n</Vhost>\n</Vhosts>",
            "vhosts.xml:4: <Res2xx>: \"soon\" is not a time",
        ),
        (
            "<Vhosts>\n<Vhost Name=\"a\">\n<Origin><Address>1.1.1.1</Address></Origin>\n<OriginOptions><PartSize>0.01</PartSize></OriginOptions>\n</Vhost>\n</Vhosts>",
            "vhosts.xml:4: <PartSize>: \"0.01\" MB is below the smallest part, 0.0625 MB (64 KiB)",
        ),
        ("<Vhosts>\n<Vhost Name=\"a\">\n<Origin>\n</Vhosts>", "vhosts.xml:4: malformed XML"),
    ];
    for (vhosts, want) in cases {
        let (ok, stderr) = check(server, vhosts);
        assert!(!ok, "must be rejected: {vhosts}");
        assert!(stderr.contains(want), "want {want:?} in:\n{stderr}");
    }
    let (ok, stderr) = check(
        "<Server><Cache><MaxSockets Reopen=\"75\" Bogus=\"1\">80000</MaxSockets></Cache></Server>",
        &vhosts_xml(""),
    );
    assert!(
        !ok && stderr.contains("server.xml:1: <MaxSockets>: unknown attribute Bogus"),
        "{stderr}"
    );
    let (ok, stderr) = check("<Server><VHostDefault>\n<Options>\n<ClientKeepAliveSec>x</ClientKeepAliveSec></Options></VHostDefault></Server>", &vhosts_xml(""));
    assert!(
        !ok && stderr.contains("server.xml:3: <ClientKeepAliveSec>"),
        "a bad <VHostDefault> is reported even without vhosts: {stderr}"
    );
    let missing = tempfile::tempdir().unwrap();
    let out = Command::new(kuractl_bin())
        .args(["check", "--conf-dir"])
        .arg(missing.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.xml: cannot read"));
}

#[test]
fn disks_are_read_in_file_order_and_bad_paths_are_placed() {
    let server = |disks: &str| {
        format!("<Server>\n<Cache>\n<Storage>\n{disks}</Storage>\n</Cache>\n</Server>\n")
    };
    let c = config::load_str(
        Path::new("/nonexistent"),
        &server("<Disk>/cache2/</Disk>\n<Disk Quota=\"100\">/nowhere/cache1</Disk>\n"),
        &vhosts_xml(""),
    )
    .unwrap();
    let paths: Vec<&Path> = c
        .server
        .storage
        .disks
        .iter()
        .map(|d| d.path.as_path())
        .collect();
    assert_eq!(
        paths,
        [Path::new("/cache2/"), Path::new("/nowhere/cache1")],
        "as written, in order; a missing directory is not a configuration error"
    );
    let none = config::load_str(Path::new("/x"), &server(""), &vhosts_xml("")).unwrap();
    assert!(none.server.storage.disks.is_empty());
    assert!(!none.not_implemented.iter().any(|u| u.path.contains("Disk")));
    for (disks, want) in [
        (
            "<Disk> </Disk>\n",
            "server.xml:4: <Disk>: the directory path is empty",
        ),
        (
            "<Disk>cache</Disk>\n",
            "server.xml:4: <Disk>: \"cache\" is not an absolute directory path",
        ),
        (
            "<Disk>/c</Disk>\n<Disk>/c/</Disk>\n",
            "server.xml:5: <Disk>: /c/ is listed twice",
        ),
    ] {
        let (ok, stderr) = check(&server(disks), &vhosts_xml(""));
        assert!(!ok && stderr.contains(want), "want {want:?} in:\n{stderr}");
    }
}

#[test]
fn vhosts_inherit_vhostdefault_and_override_only_what_they_set() {
    let server = "<Server><VHostDefault><Options>\n<ViaHeader>OFF</ViaHeader>\n<KeepAliveHeader Max=\"5\">ON</KeepAliveHeader>\n<TTL><Res2xx>100</Res2xx><Res4xx>7</Res4xx></TTL>\n</Options></VHostDefault></Server>";
    let vhosts = format!(
        "<Vhosts><Vhost Name=\"own\">{ORIGIN}<Options><ViaHeader>ON</ViaHeader><KeepAliveHeader>OFF</KeepAliveHeader><TTL><Res2xx>200</Res2xx></TTL></Options></Vhost><Vhost Name=\"inherits\">{ORIGIN}</Vhost></Vhosts>"
    );
    let c = config::load_str(Path::new("/nonexistent"), server, &vhosts).unwrap();
    let (own, inh) = (&c.vhosts[0], &c.vhosts[1]);
    assert!(own.client.via_header && !inh.client.via_header);
    assert!(!own.client.keep_alive_header && inh.client.keep_alive_header);
    assert_eq!(
        (own.client.keep_alive_max, inh.client.keep_alive_max),
        (5, 5),
        "attributes inherit one by one"
    );
    assert_eq!(
        (own.ttl.res2xx.as_secs(), inh.ttl.res2xx.as_secs()),
        (200, 100)
    );
    assert_eq!((own.ttl.res4xx.as_secs(), inh.ttl.res4xx.as_secs()), (7, 7));
    assert_eq!(
        own.ttl.res5xx.as_secs(),
        30,
        "the guide's default when nobody sets it"
    );
    assert!(
        own.client.age_header,
        "Age is on by default (RFC 9111), unlike the guide"
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn example(name: &str) -> String {
        std::fs::read_to_string(shared().join("config-examples").join(name)).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Any bytes: no panic, and every error is placed in a file.
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,400}", t in "(<[A-Za-z]{1,8}( [A-Za-z]{1,5}=\"[^\"]{0,5}\")?/?>|</[A-Za-z]{1,8}>|[a-z0-9 ]{0,6}){0,30}") {
            for (srv, vh) in [(s.as_str(), t.as_str()), (t.as_str(), s.as_str())] {
                if let Err(errors) = config::load_str(Path::new("/x"), srv, vh) {
                    for e in errors.0 {
                        let msg = e.to_string();
                        prop_assert!(msg.starts_with("server.xml:") || msg.starts_with("vhosts.xml:") || msg.starts_with("(default)"), "{}", msg);
                    }
                }
            }
        }

        /// The example configuration with one byte changed: loaded or rejected with a placed error.
        #[test]
        fn mutated_examples_are_loaded_or_rejected_cleanly(pos in 0usize..100_000, byte in any::<u8>(), which in 0..2u8) {
            let (mut server, mut vhosts) = (example("server.xml").into_bytes(), example("vhosts.xml").into_bytes());
            let target = if which == 0 { &mut server } else { &mut vhosts };
            let i = pos % target.len();
            target[i] = byte;
            let (server, vhosts) = (String::from_utf8_lossy(&server), String::from_utf8_lossy(&vhosts));
            if let Err(errors) = config::load_str(Path::new("/x"), &server, &vhosts) {
                prop_assert!(!errors.0.is_empty());
                for e in errors.0 {
                    let msg = e.to_string();
                    prop_assert!(msg.contains(".xml:"), "{}", msg);
                }
            }
        }
    }
}
