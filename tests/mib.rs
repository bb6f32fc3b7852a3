//! KURA-MIB (`mibs/KURA-MIB.txt`): the committed module is the one
//! `kura::snmp::mib::kura_mib()` writes from the served tree, smilint finds
//! nothing wrong with it, and net-snmp's snmptranslate resolves every served
//! object to an OBJECT-TYPE of it at the OID the agent serves.
//!
//! smilint (Debian: smitools) and snmptranslate (snmp) must be installed
//! (`./dev/setup` does it; CI installs both): a missing tool fails the test.
//! They need the IETF modules SNMPv2-SMI, -TC and -CONF, which Debian keeps
//! in a non-free package; `tests/mibs/` ships them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kura::snmp::mib::kura_mib;
use kura::snmp::tree::tree;

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The generated module in a directory of its own: the tools read it from
/// there, so they check what the code writes, whatever state the committed
/// file is in (the first test compares the two).
fn generated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("KURA-MIB.txt"), kura_mib()).unwrap();
    dir
}

/// Runs a tool; a tool that cannot be run fails the test with what to install.
fn run(cmd: &mut Command) -> Output {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {tool}: {e}; install the Debian packages snmp and smitools (./dev/setup)"
        )
    })
}

/// snmptranslate reading only this machine's defaults, `tests/mibs` and `dir`:
/// no `snmp.conf` and no MIBS/MIBDIRS from the environment.
fn snmptranslate(dir: &Path, mib_dirs: &str, modules: &str, args: &[&str]) -> Output {
    let mibs = root().join("tests/mibs");
    let mut cmd = Command::new("snmptranslate");
    cmd.env("SNMPCONFPATH", dir)
        .env_remove("MIBS")
        .env_remove("MIBDIRS")
        .arg("-M")
        .arg(format!("{mib_dirs}{}:{}", mibs.display(), dir.display()))
        .args(["-m", modules])
        .args(args);
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "snmptranslate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The non-empty lines of a tool's output.
fn lines(out: &Output) -> Vec<String> {
    (String::from_utf8_lossy(&out.stdout).lines())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// KURA_BLESS=1 rewrites the committed module after a deliberate change.
#[test]
fn committed_mib_is_the_generated_one() {
    let path = root().join("mibs/KURA-MIB.txt");
    let got = kura_mib();
    if std::env::var_os("KURA_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        got == want,
        "mibs/KURA-MIB.txt differs from kura_mib(); review, then rerun with KURA_BLESS=1 cargo test --test mib"
    );
}

#[test]
fn smilint_reports_nothing() {
    let dir = generated();
    // No configuration file: only SMIPATH is searched, and nothing is hidden.
    let out = run(Command::new("smilint")
        .env("SMIPATH", root().join("tests/mibs"))
        .args(["-c", "/dev/null", "-l", "6"])
        .arg(dir.path().join("KURA-MIB.txt")));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.is_empty(),
        "smilint -l 6:\n{report}"
    );
}

/// Names and OIDs translate both ways with net-snmp's default modules loaded
/// too (`-m +KURA-MIB`, as an operator runs snmpwalk), so no name of ours is
/// taken by one of them.
#[test]
fn snmptranslate_resolves_names_and_served_oids() {
    let dir = generated();
    let translate = |args: &[&str]| lines(&snmptranslate(dir.path(), "+", "+KURA-MIB", args));
    let base = "1.3.6.1.4.1.40001.1";
    let names = [
        ("kura", ""),
        ("kuraMetaVersion", ".1.3"),
        ("kuraVhostClientHttpReqCount", ".4.3.1.11.11.10.9"),
        ("kuraSystemDiskPerfReadCount", ".2.19.1.2"),
        ("kuraSystemDiskInfoTotalSize", ".2.18.1.3"),
        ("kuraViewClientHttpReqCount", ".4.11.1.11.11.10.9"),
    ];
    for (name, oid) in names {
        let want = vec![format!(".{base}{oid}")];
        // Unqualified (found by searching every loaded module), and by module.
        assert_eq!(translate(&["-IR", "-On", name]), want, "{name}");
        assert_eq!(
            translate(&["-On", &format!("KURA-MIB::{name}")]),
            want,
            "{name}"
        );
    }
    let instances = [
        (".4.3.1.11.11.10.9.5.2", "kuraVhostClientHttpReqCount.5.2"),
        (".2.19.1.2.5.1", "kuraSystemDiskPerfReadCount.5.1"),
        (".2.18.1.3.1", "kuraSystemDiskInfoTotalSize.1"),
        (".1.3", "kuraMetaVersion"),
        (".2.1.0", "kuraSystemCpuTotal.0"),
        (".4.11.1.11.11.10.9.5.1", "kuraViewClientHttpReqCount.5.1"),
    ];
    for (oid, name) in instances {
        assert_eq!(
            translate(&[&format!("{base}{oid}")]),
            [format!("KURA-MIB::{name}")],
            "{oid}"
        );
    }
}

/// The read-only objects of the module are exactly the served columns of the
/// enterprise tree, each at its OID (as net-snmp reads the module).
#[test]
fn every_served_column_is_an_object_of_the_mib() {
    let dir = generated();
    // Only KURA-MIB and what it imports: net-snmp must read it without a word.
    let out = snmptranslate(dir.path(), "", "KURA-MIB", &["-Tz"]);
    assert!(
        out.stderr.is_empty(),
        "snmptranslate -m KURA-MIB:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `"name"\t\t\t"1.3.6..."` per node.
    let oids: BTreeMap<String, String> = lines(&out)
        .iter()
        .filter_map(|l| {
            let mut f = l.split('"').filter(|f| !f.trim().is_empty());
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect();
    let mib = kura_mib();
    let mut read_only = BTreeSet::new();
    for block in mib.split("\n\n") {
        let Some(name) = block
            .lines()
            .next()
            .and_then(|l| l.strip_suffix(" OBJECT-TYPE"))
        else {
            continue;
        };
        if block.contains("MAX-ACCESS   read-only") {
            let oid = oids.get(name).unwrap_or_else(|| panic!("{name}: not read"));
            assert!(read_only.insert(oid.clone()), "{oid} twice");
        }
    }
    let served: BTreeSet<String> = (tree().columns.iter())
        .filter(|c| c.section != "mib2")
        .map(|c| c.oid.to_string())
        .collect();
    let missing: Vec<_> = served.difference(&read_only).collect();
    let extra: Vec<_> = read_only.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "served but not in the MIB: {missing:?}\nin the MIB but not served: {extra:?}"
    );
}
