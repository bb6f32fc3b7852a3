//! The OID tree the agent serves: the MIB-2 `system` and `snmp` groups, and
//! every object of `oid-tree.tsv` (the spec's table, embedded as it is, a test
//! keeps it identical) bound to what computes it. Traffic and system figures
//! are bound through the stats catalog ([`catalog::snmp_traffic`],
//! [`catalog::snmp_system`]), the rest here.
//!
//! A column is one object: its OID prefix, the variable parts appended after it
//! (minute windows and table indexes, SNMP.md 1-7), its syntax and binding.
//! Lookups take the instance space of the moment ([`Shape`]): GET accepts any
//! minute 0..=60, a walk visits one minute per column (the configured default).

use std::sync::LazyLock;

use super::oid::Oid;
use crate::stats::catalog::{self, Source};
use crate::stats::disk::DISK_N;

/// The embedded `oid-tree.tsv`.
pub const OID_TREE_TSV: &str = include_str!("oid-tree.tsv");

/// The enterprise tree, `1.3.6.1.4.1.40001.1` (SNMP.md 1, 18).
pub const ENTERPRISE: &[u32] = &[1, 3, 6, 1, 4, 1, 40001, 1];

/// MIB-2 `system` (RFC 3418).
const MIB2_SYSTEM: &[u32] = &[1, 3, 6, 1, 2, 1, 1];

/// MIB-2 `snmp` (RFC 3418).
const MIB2_SNMP: &[u32] = &[1, 3, 6, 1, 2, 1, 11];

/// A variable part of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// A minute window, 0..=60; a walk uses the scope's configured default.
    Minute(Scope),
    /// A row index of a table, from 1.
    Index(Table),
}

/// Which configured default a minute variable walks with (SNMP.md 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `system` rows: the last second.
    System,
    /// `global` rows: `GlobalMin`.
    Global,
    /// `system.diskPerf`: `DiskMin`.
    Disk,
    /// `cache.host` and `cache.vhost`: `VHostMin`.
    Vhost,
    /// `cache.view`: `ViewMin`.
    View,
}

/// Tables indexed from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `[vhostIndex]`.
    Vhost,
    /// `[viewIndex]`.
    View,
    /// `[diskIndex]`: position of `<Disk>` in `<Storage>`.
    Disk,
    /// `[confIndex]`: 1 is the configuration in force.
    Conf,
}

/// How a column's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// INTEGER (Integer32), saturating (SNMP.md 9).
    Integer,
    /// OCTET STRING, UTF-8.
    String,
    /// TimeTicks.
    TimeTicks,
    /// OBJECT IDENTIFIER.
    ObjectId,
    /// Counter32.
    Counter32,
}

/// Whose traffic a traffic column reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    /// The host: the sum over vhosts.
    Host,
    /// The vhost of the `[vhostIndex]`.
    Vhost,
    /// The view of the `[viewIndex]`.
    View,
}

/// Text values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// `meta.manufacture`.
    Manufacture,
    /// `meta.software`.
    Software,
    /// `meta.version`.
    Version,
    /// Host name (`meta.hostname`, `cache.host.name`, `sysName.0`).
    HostName,
    /// `Healthy` (`meta.state`, `cache.host.status`).
    State,
    /// `<Admin>` (`meta.admin`, `sysContact.0`).
    Admin,
    /// `sysDescr.0`: name, version, OS.
    Description,
    /// `sysLocation.0`: not configured, empty.
    Location,
    /// The vhost's or view's name.
    EntityName,
    /// The vhost's status: `Healthy` or `Inactive`.
    EntityStatus,
    /// `diskInfoPath`.
    DiskPath,
    /// `diskInfoStatus`.
    DiskStatus,
    /// Configuration hash.
    ConfHash,
    /// Where the configuration is kept.
    ConfPath,
    /// kura version that wrote the configuration.
    ConfVersion,
}

/// Whole numbers that are not window figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number {
    /// Seconds since kurad started.
    Uptime,
    /// Seconds since the vhost's statistics started (0 for a view).
    EntityUptime,
    /// Configured vhosts.
    VhostCount,
    /// Largest `[vhostIndex]` in use.
    VhostIndexMax,
    /// Configured views.
    ViewCount,
    /// Largest `[viewIndex]` in use.
    ViewIndexMax,
    /// Configured disks.
    DiskCount,
    /// Physical memory, KB.
    MemTotalKb,
    /// Disk size in MB: total, used, free.
    DiskMb(DiskSpace),
    /// Disk use in `div` units of a percent (100 = whole percent, 1 = 0.01 %).
    DiskUseRatio(i64),
    /// Configuration ID.
    ConfId,
    /// Configuration time, unix seconds.
    ConfTime,
    /// Configuration type (1 start, 2 reload).
    ConfType,
    /// Configuration size, bytes.
    ConfSize,
    /// `sysServices.0`: application and end-to-end layers.
    Services,
    /// `snmpEnableAuthenTraps.0`: disabled (2).
    AuthenTraps,
}

/// Disk space figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskSpace {
    /// Size of the file system.
    Total,
    /// In use.
    Used,
    /// Free.
    Free,
}

/// The agent's own counters (MIB-2 `snmp` group); `as usize` is the position in [`SnmpCounter::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnmpCounter {
    /// snmpInPkts (1).
    InPkts,
    /// snmpOutPkts (2).
    OutPkts,
    /// snmpInBadVersions (3).
    InBadVersions,
    /// snmpInBadCommunityNames (4).
    InBadCommunityNames,
    /// snmpInBadCommunityUses (5).
    InBadCommunityUses,
    /// snmpInASNParseErrs (6).
    InAsnParseErrs,
    /// snmpSilentDrops (31).
    SilentDrops,
    /// snmpProxyDrops (32), always 0.
    ProxyDrops,
}

impl SnmpCounter {
    /// Every counter, in OID order, with its sub-identifier and name.
    pub const ALL: [(SnmpCounter, u32, &'static str); 8] = [
        (SnmpCounter::InPkts, 1, "snmpInPkts"),
        (SnmpCounter::OutPkts, 2, "snmpOutPkts"),
        (SnmpCounter::InBadVersions, 3, "snmpInBadVersions"),
        (
            SnmpCounter::InBadCommunityNames,
            4,
            "snmpInBadCommunityNames",
        ),
        (SnmpCounter::InBadCommunityUses, 5, "snmpInBadCommunityUses"),
        (SnmpCounter::InAsnParseErrs, 6, "snmpInASNParseErrs"),
        (SnmpCounter::SilentDrops, 31, "snmpSilentDrops"),
        (SnmpCounter::ProxyDrops, 32, "snmpProxyDrops"),
    ];
}

/// What computes a column's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// A traffic figure over the minute window, in `div` times the catalog's units.
    Traffic {
        /// Host, vhost or view.
        entity: Entity,
        /// The catalog's computation.
        source: Source,
        /// Unit divisor (100 for `(100%)` rows).
        div: i64,
    },
    /// A sampled system figure over the minute window.
    System {
        /// The catalog's computation.
        source: Source,
        /// Unit divisor (100 for `(100%)`, 1024 for KB).
        div: i64,
    },
    /// A disk I/O figure (column `n` of `diskPerf`, from 0) over the `[diskMin]` window.
    DiskPerf(usize),
    /// What the cache holds now (`contents`), for the host, a vhost or a view.
    Contents {
        /// Host, vhost or view.
        entity: Entity,
        /// Which figure.
        field: ContentField,
    },
    /// A text.
    Text(Text),
    /// A number.
    Number(Number),
    /// `sysUpTime.0`.
    SysUpTime,
    /// `sysObjectID.0`.
    SysObjectId,
    /// An agent counter.
    Snmp(SnmpCounter),
}

/// A `contents` figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentField {
    /// `memory`: body bytes held in memory, in KB.
    MemoryKb,
    /// `filesTotalCount`: objects.
    Files,
    /// `filesTotalSize`: their body bytes, in MB.
    SizeMb,
    /// `filesCountU1KB` .. `filesCountO16GB`: objects of size class `n`
    /// (see [`crate::stats::contents::Contents::by_size`]).
    SizeClass(usize),
}

/// One object of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// OID without the instance (the whole OID for objects without variables).
    pub oid: Oid,
    /// Section of `oid-tree.tsv` (`cache.vhost.traffic.client`, ...), or `mib2`.
    pub section: String,
    /// Name: the table's, completed for the unnamed `(10000%)` and load-average rows.
    pub name: String,
    /// The table's description (unit included).
    pub description: String,
    /// Variable parts, in the order they follow the OID.
    pub vars: Vec<Var>,
    /// Encoding.
    pub syntax: Syntax,
    /// What computes it.
    pub binding: Binding,
}

/// The instance space of the moment: the walk defaults and the table rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Walk minute per [`Scope`], in declaration order.
    pub walk_minutes: [u32; 5],
    /// `[vhostIndex]` rows a walk visits (existing and padded), ascending.
    pub vhosts: Vec<u32>,
    /// `[viewIndex]` rows, ascending.
    pub views: Vec<u32>,
    /// Number of disks.
    pub disks: u32,
    /// Number of configuration records.
    pub confs: u32,
}

impl Shape {
    fn rows(&self, t: Table) -> RowSet<'_> {
        match t {
            Table::Vhost => RowSet::List(&self.vhosts),
            Table::View => RowSet::List(&self.views),
            Table::Disk => RowSet::Upto(self.disks),
            Table::Conf => RowSet::Upto(self.confs),
        }
    }

    fn walk_minute(&self, s: Scope) -> u32 {
        self.walk_minutes[s as usize]
    }
}

/// Rows of a table.
enum RowSet<'a> {
    /// These indexes.
    List(&'a [u32]),
    /// `1..=n`.
    Upto(u32),
}

impl RowSet<'_> {
    fn contains(&self, i: u32) -> bool {
        match self {
            RowSet::List(l) => l.binary_search(&i).is_ok(),
            RowSet::Upto(n) => (1..=*n).contains(&i),
        }
    }

    /// The first row `>= i`.
    fn first_from(&self, i: u32) -> Option<u32> {
        match self {
            RowSet::List(l) => l.get(l.partition_point(|x| *x < i)).copied(),
            RowSet::Upto(n) => (i.max(1) <= *n).then_some(i.max(1)),
        }
    }
}

/// The tree: columns in OID order.
#[derive(Debug)]
pub struct Tree {
    /// Every column, ascending by OID; no column's OID is a prefix of another's.
    pub columns: Vec<Column>,
}

/// The tree kurad serves.
pub fn tree() -> &'static Tree {
    static TREE: LazyLock<Tree> =
        LazyLock::new(|| Tree::build().unwrap_or_else(|e| panic!("oid-tree.tsv: {e}")));
    &TREE
}

/// A resolved object instance.
#[derive(Debug, Clone, Copy)]
pub struct Instance<'t> {
    /// Its column.
    pub column: &'t Column,
    /// Minute window, when the column has one.
    pub minute: Option<u32>,
    /// Table index, when the column has one.
    pub index: Option<u32>,
}

/// Why a GET names nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// No such object.
    Object,
    /// The object exists, not this instance.
    Instance,
}

impl Tree {
    fn build() -> Result<Tree, String> {
        let mut columns = mib2_columns();
        let mut prev_name = String::new();
        let mut vhost_rows = Vec::new();
        for (n, line) in OID_TREE_TSV.lines().enumerate().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            let [section, template, name, kind, description] = f[..] else {
                return Err(format!("line {}: five fields wanted", n + 1));
            };
            if kind == "OID" {
                continue; // Branch markers have no instance (SNMP.md 4).
            }
            let name = if name.is_empty() {
                unnamed_row_name(&prev_name, description)
                    .ok_or_else(|| format!("line {}: an unnamed row kura cannot name", n + 1))?
            } else {
                name.to_string()
            };
            prev_name.clone_from(&name);
            let col = column(section, template, &name, kind, description)
                .map_err(|e| format!("line {}: {e}", n + 1))?;
            if section.starts_with("cache.vhost") {
                vhost_rows.push(col.clone());
            }
            columns.push(col);
        }
        // cache.view answers what cache.vhost does, under 4.11.1 with [viewIndex] (guide ch. 11).
        for c in vhost_rows {
            columns.push(view_column(c));
        }
        columns.sort_by_key(|c| c.oid);
        for w in columns.windows(2) {
            if w[1].oid.starts_with(w[0].oid.as_slice()) {
                return Err(format!("{} is a prefix of {}", w[0].oid, w[1].oid));
            }
        }
        Ok(Tree { columns })
    }

    /// The column whose OID `oid` starts with.
    fn column_of(&self, oid: &[u32]) -> Result<(usize, &Column), usize> {
        let at = self.columns.partition_point(|c| c.oid.as_slice() <= oid);
        match at.checked_sub(1) {
            Some(i) if oid.starts_with(self.columns[i].oid.as_slice()) => Ok((i, &self.columns[i])),
            _ => Err(at),
        }
    }

    /// The instance a GET names.
    pub fn get(&self, oid: &[u32], shape: &Shape) -> Result<Instance<'_>, Missing> {
        let (_, col) = self.column_of(oid).map_err(|_| Missing::Object)?;
        let suffix = &oid[col.oid.len()..];
        if suffix.len() != col.vars.len() {
            return Err(Missing::Instance);
        }
        let mut inst = Instance {
            column: col,
            minute: None,
            index: None,
        };
        for (v, &x) in col.vars.iter().zip(suffix) {
            match v {
                Var::Minute(_) if x <= 60 => inst.minute = Some(x),
                Var::Index(t) if shape.rows(*t).contains(x) => inst.index = Some(x),
                _ => return Err(Missing::Instance),
            }
        }
        Ok(inst)
    }

    /// The first instance after `oid` in walk order that `visible` admits; its full OID in `out`.
    pub fn next(
        &self,
        oid: &[u32],
        shape: &Shape,
        out: &mut Oid,
        mut visible: impl FnMut(&[u32]) -> bool,
    ) -> Option<Instance<'_>> {
        let start = match self.column_of(oid) {
            Ok((i, _)) => i,
            Err(at) => at,
        };
        let mut after: &[u32] = oid;
        for col in &self.columns[start..] {
            let mut cursor = first_candidate(col, after, shape);
            while let Some(inst) = cursor {
                *out = col.oid;
                if let Some(m) = inst.minute {
                    out.push(m);
                }
                if let Some(i) = inst.index {
                    out.push(i);
                }
                if visible(out.as_slice()) {
                    return Some(inst);
                }
                // Hidden: the next row of the same column, if any.
                cursor = inst.index.and_then(|i| {
                    let t = table_of(col)?;
                    let i = shape.rows(t).first_from(i.checked_add(1)?)?;
                    Some(Instance {
                        index: Some(i),
                        ..inst
                    })
                });
            }
            after = &[];
        }
        None
    }
}

fn table_of(col: &Column) -> Option<Table> {
    col.vars.iter().find_map(|v| match v {
        Var::Index(t) => Some(*t),
        Var::Minute(_) => None,
    })
}

/// The first walk instance of `col` after `after` (`after` outside the column: its first).
fn first_candidate<'t>(col: &'t Column, after: &[u32], shape: &Shape) -> Option<Instance<'t>> {
    let inside = after.starts_with(col.oid.as_slice());
    let suffix = if inside { &after[col.oid.len()..] } else { &[] };
    let minute = col.vars.iter().find_map(|v| match v {
        Var::Minute(s) => Some(shape.walk_minute(*s)),
        Var::Index(_) => None,
    });
    let mk = |index| Instance {
        column: col,
        minute,
        index,
    };
    let Some(table) = table_of(col) else {
        // One instance: the column OID, or OID.minute.
        let after_it = match (minute, suffix.first()) {
            _ if !inside => true,
            (None, _) => false,
            (Some(_), None) => true,
            (Some(m), Some(&x)) => x < m,
        };
        return after_it.then(|| mk(None));
    };
    // Past the minute part (if any), what of the request is left to compare the row with.
    let rest: &[u32] = match (minute, suffix.split_first()) {
        (_, None) => &[],
        (None, Some(_)) => suffix,
        (Some(m), Some((&x, rest))) if x == m => rest,
        (Some(m), Some((&x, _))) if x < m => &[],
        // The request sorts after every row at the walk minute.
        (Some(_), Some(_)) => return None,
    };
    let from = match rest.first() {
        None => 1,
        Some(i) => i.checked_add(1)?,
    };
    shape.rows(table).first_from(from).map(|i| mk(Some(i)))
}

/// Names the unnamed rows after the row they follow: `(10000%)` twins and the
/// 5- and 15-minute load averages.
fn unnamed_row_name(prev: &str, description: &str) -> Option<String> {
    if description.contains("(10000%)") {
        Some(format!("{prev}10000"))
    } else if description.contains("15 minutes") {
        Some("sysLoadAverage15".into())
    } else if description.contains("5 minutes") {
        Some("sysLoadAverage5".into())
    } else {
        None
    }
}

/// Parses a template like `1.3.6.1.4.1.40001.1.4.3.1.11.11.10.9.{vhostMin}.{vhostIndex}`.
fn template_vars(section: &str, template: &str) -> Result<(Oid, Vec<Var>), String> {
    let mut oid = Oid::empty();
    let mut vars = Vec::new();
    for part in template.split('.') {
        if let Some(v) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let var = match v {
                "sysMin" => Var::Minute(Scope::System),
                // system .40-.44 take one minute variable like the rest of `system` (SNMP.md 3).
                "globalMin" if section == "system" => continue,
                "globalMin" => Var::Minute(Scope::Global),
                "diskMin" => Var::Minute(Scope::Disk),
                "vhostMin" => Var::Minute(Scope::Vhost),
                "vhostIndex" => Var::Index(Table::Vhost),
                "diskIndex" => Var::Index(Table::Disk),
                "confIndex" => Var::Index(Table::Conf),
                other => return Err(format!("unknown variable {{{other}}}")),
            };
            vars.push(var);
        } else if !vars.is_empty() {
            return Err("a fixed sub-identifier after a variable".into());
        } else {
            let id = part
                .parse()
                .map_err(|_| format!("bad sub-identifier {part:?}"))?;
            oid.push(id);
        }
    }
    Ok((oid, vars))
}

/// `100` for a `(100%)` row: the 0.01 % figure in whole percent.
fn percent_div(description: &str) -> i64 {
    if description.contains("(100%)") {
        100
    } else {
        1
    }
}

fn column(
    section: &str,
    template: &str,
    name: &str,
    kind: &str,
    description: &str,
) -> Result<Column, String> {
    let (oid, vars) = template_vars(section, template)?;
    let syntax = match kind {
        "Integer" => Syntax::Integer,
        "String" => Syntax::String,
        other => return Err(format!("unknown type {other}")),
    };
    let arc = oid.as_slice().last().copied().unwrap_or(0);
    let binding = bind(section, name, description, arc)
        .ok_or_else(|| format!("{section} {name}: no binding in the catalog"))?;
    Ok(Column {
        oid,
        section: section.to_string(),
        name: name.to_string(),
        description: description.to_string(),
        vars,
        syntax,
        binding,
    })
}

/// What computes the `oid-tree.tsv` row `name` of `section`.
/// `arc` is the row's last fixed sub-identifier.
fn bind(section: &str, name: &str, description: &str, arc: u32) -> Option<Binding> {
    use Binding::{Number as N, Text as T};
    let base = name.strip_suffix("10000").unwrap_or(name);
    let div = percent_div(description);
    let b = match (section, base) {
        ("meta", "manufacture") => T(Text::Manufacture),
        ("meta", "software") => T(Text::Software),
        ("meta", "version") => T(Text::Version),
        ("meta", "hostname") => T(Text::HostName),
        ("meta", "state") => T(Text::State),
        ("meta", "uptime") => N(Number::Uptime),
        ("meta", "admin") => T(Text::Admin),
        ("meta.conf", "ID") => N(Number::ConfId),
        ("meta.conf", "Time") => N(Number::ConfTime),
        ("meta.conf", "Type") => N(Number::ConfType),
        ("meta.conf", "Size") => N(Number::ConfSize),
        ("meta.conf", "Hash") => T(Text::ConfHash),
        ("meta.conf", "Path") => T(Text::ConfPath),
        ("meta.conf", "Ver") => T(Text::ConfVersion),
        ("system", "memTotal") => N(Number::MemTotalKb),
        ("system", "diskCount") => N(Number::DiskCount),
        ("system.diskInfo", "diskInfoPath") => T(Text::DiskPath),
        ("system.diskInfo", "diskInfoTotalSize") => N(Number::DiskMb(DiskSpace::Total)),
        ("system.diskInfo", "diskInfoUseSize") => N(Number::DiskMb(DiskSpace::Used)),
        ("system.diskInfo", "diskInfoFreeSize") => N(Number::DiskMb(DiskSpace::Free)),
        ("system.diskInfo", "diskInfoUseRatio") => N(Number::DiskUseRatio(div)),
        ("system.diskInfo", "diskInfoStatus") => T(Text::DiskStatus),
        ("system.diskPerf", _) => {
            // diskPerf columns .2 to .12 are the /proc/diskstats fields in order (DiskField::ALL).
            Binding::DiskPerf(
                usize::try_from(arc.checked_sub(2)?)
                    .ok()
                    .filter(|i| *i < DISK_N)?,
            )
        }
        ("system" | "global", _) => {
            // Memory figures are sampled in bytes; the table wants KB.
            let div = if base.starts_with("mem") && !base.ends_with("Ratio") {
                1024
            } else {
                div
            };
            Binding::System {
                source: catalog::snmp_system(base)?,
                div,
            }
        }
        ("cache", "vhostCount") => N(Number::VhostCount),
        ("cache", "vhostIndexMax") => N(Number::VhostIndexMax),
        ("cache", "viewCount") => N(Number::ViewCount),
        ("cache", "viewIndexMax") => N(Number::ViewIndexMax),
        ("cache.host", "name") => T(Text::HostName),
        ("cache.host", "status") => T(Text::State),
        ("cache.host", "uptime") => N(Number::Uptime),
        ("cache.vhost", "name") => T(Text::EntityName),
        ("cache.vhost", "status") => T(Text::EntityStatus),
        ("cache.vhost", "uptime") => N(Number::EntityUptime),
        _ => {
            let entity = if section.starts_with("cache.host") {
                Entity::Host
            } else if section.starts_with("cache.vhost") {
                Entity::Vhost
            } else {
                return None;
            };
            let rest = section.split_once('.')?.1.split_once('.')?.1;
            if rest == "contents" {
                // Columns .1-.3, then the size classes from .10 on.
                let field = match arc {
                    1 => ContentField::MemoryKb,
                    2 => ContentField::Files,
                    3 => ContentField::SizeMb,
                    n => ContentField::SizeClass(
                        usize::try_from(n.checked_sub(10)?)
                            .ok()
                            .filter(|i| *i < crate::stats::contents::SIZE_CLASSES)?,
                    ),
                };
                return Some(Binding::Contents { entity, field });
            }
            let group = rest.strip_prefix("traffic")?.trim_start_matches('.');
            Binding::Traffic {
                entity,
                source: catalog::snmp_traffic(group, base)?,
                div,
            }
        }
    };
    Some(b)
}

/// A `cache.vhost` column as the `cache.view` one: 4.3.1 becomes 4.11.1, the
/// vhost index the view index, and walks use `ViewMin`.
fn view_column(mut c: Column) -> Column {
    let vhost_base = [ENTERPRISE, &[4, 3, 1]].concat();
    let mut oid = Oid::from_slice(ENTERPRISE).expect("short");
    oid.extend(&[4, 11, 1]);
    oid.extend(&c.oid.as_slice()[vhost_base.len()..]);
    c.oid = oid;
    c.section = c.section.replacen("cache.vhost", "cache.view", 1);
    for v in &mut c.vars {
        *v = match *v {
            Var::Minute(_) => Var::Minute(Scope::View),
            Var::Index(_) => Var::Index(Table::View),
        };
    }
    match &mut c.binding {
        Binding::Traffic { entity, .. } | Binding::Contents { entity, .. } => {
            *entity = Entity::View
        }
        Binding::Number(Number::EntityUptime) | Binding::Text(_) => {}
        other => unreachable!("vhost row bound to {other:?}"),
    }
    c
}

/// The MIB-2 `system` and `snmp` groups (SNMP.md 2).
fn mib2_columns() -> Vec<Column> {
    let scalar = |base: &[u32], sub: u32, name: &str, syntax, binding, description: &str| {
        let mut oid = Oid::from_slice(base).expect("short");
        oid.extend(&[sub, 0]);
        Column {
            oid,
            section: "mib2".into(),
            name: name.into(),
            description: description.into(),
            vars: Vec::new(),
            syntax,
            binding,
        }
    };
    let s = MIB2_SYSTEM;
    let mut v = vec![
        scalar(
            s,
            1,
            "sysDescr",
            Syntax::String,
            Binding::Text(Text::Description),
            "kura, version, OS",
        ),
        scalar(
            s,
            2,
            "sysObjectID",
            Syntax::ObjectId,
            Binding::SysObjectId,
            "1.3.6.1.4.1.40001.1",
        ),
        scalar(
            s,
            3,
            "sysUpTime",
            Syntax::TimeTicks,
            Binding::SysUpTime,
            "Time since the agent started (0.01 s)",
        ),
        scalar(
            s,
            4,
            "sysContact",
            Syntax::String,
            Binding::Text(Text::Admin),
            "<Admin>",
        ),
        scalar(
            s,
            5,
            "sysName",
            Syntax::String,
            Binding::Text(Text::HostName),
            "Host name",
        ),
        scalar(
            s,
            6,
            "sysLocation",
            Syntax::String,
            Binding::Text(Text::Location),
            "Not configured",
        ),
        scalar(
            s,
            7,
            "sysServices",
            Syntax::Integer,
            Binding::Number(Number::Services),
            "Application and end-to-end layers",
        ),
    ];
    for (c, sub, name) in SnmpCounter::ALL {
        v.push(scalar(
            MIB2_SNMP,
            sub,
            name,
            Syntax::Counter32,
            Binding::Snmp(c),
            name,
        ));
        if sub == 6 {
            v.push(scalar(
                MIB2_SNMP,
                30,
                "snmpEnableAuthenTraps",
                Syntax::Integer,
                Binding::Number(Number::AuthenTraps),
                "Authentication traps disabled (2)",
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            walk_minutes: [0, 5, 5, 5, 5],
            vhosts: vec![1, 2, 4],
            views: vec![1],
            disks: 2,
            confs: 1,
        }
    }

    fn walk(shape: &Shape, from: &[u32]) -> Vec<Oid> {
        let mut out = Vec::new();
        let mut at = Oid::from_slice(from).unwrap();
        let mut next = Oid::empty();
        while tree()
            .next(at.as_slice(), shape, &mut next, |_| true)
            .is_some()
        {
            out.push(next);
            at = next;
        }
        out
    }

    #[test]
    fn snmp_counters_are_listed_in_declaration_order() {
        for (i, (c, _, _)) in SnmpCounter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
    }

    #[test]
    fn every_row_of_the_table_is_bound() {
        // tree() panics on any row without a binding; views mirror vhost rows.
        let t = tree();
        let rows = OID_TREE_TSV
            .lines()
            .skip(1)
            .filter(|l| l.split('\t').nth(3) != Some("OID"))
            .count();
        let vhost_rows = OID_TREE_TSV
            .lines()
            .filter(|l| l.starts_with("cache.vhost") && l.split('\t').nth(3) != Some("OID"))
            .count();
        assert_eq!(t.columns.len(), rows + vhost_rows + 7 + 9);
    }

    /// Every row answered with a figure kura does not collect is a documented gap,
    /// and every documented gap names such rows.
    #[test]
    fn uncollected_rows_are_the_documented_gaps() {
        let gaps: Vec<Vec<&str>> = include_str!("../../docs/snmp-gaps.tsv")
            .lines()
            .skip(1)
            .map(|l| l.split('\t').collect())
            .collect();
        let mut used = vec![0; gaps.len()];
        for c in &tree().columns {
            if !matches!(
                c.binding,
                Binding::Traffic {
                    source: Source::NotCollected,
                    ..
                } | Binding::System {
                    source: Source::NotCollected,
                    ..
                }
            ) {
                continue;
            }
            // Views mirror vhosts and share their gaps.
            let section = c.section.replacen("cache.view", "cache.vhost", 1);
            let hit = gaps.iter().position(|g| {
                g[0] == section && c.name.starts_with(g[1]) && ["n/a", "pending"].contains(&g[2])
            });
            let i =
                hit.unwrap_or_else(|| panic!("{section} {} is not in docs/snmp-gaps.tsv", c.name));
            used[i] += 1;
        }
        for (g, n) in gaps.iter().zip(used) {
            assert!(n > 0, "docs/snmp-gaps.tsv names no uncollected row: {g:?}");
        }
    }

    #[test]
    fn walks_are_strictly_increasing_and_get_answers_every_row() {
        let s = shape();
        let oids = walk(&s, &[]);
        assert!(oids.windows(2).all(|w| w[0] < w[1]));
        for o in &oids {
            assert!(tree().get(o.as_slice(), &s).is_ok(), "{o}");
        }
        // A vhost column has rows 1, 2 and 4 at the walk minute 5.
        let req_count = Oid::parse("1.3.6.1.4.1.40001.1.4.3.1.11.11.10.9").unwrap();
        let rows: Vec<String> = oids
            .iter()
            .filter(|o| o.starts_with(req_count.as_slice()))
            .map(|o| o.to_string())
            .collect();
        assert_eq!(
            rows,
            ["5.1", "5.2", "5.4"].map(|r| format!("{req_count}.{r}"))
        );
        // Starting inside an instance, or past a column's minute, continues correctly.
        let mut next = Oid::empty();
        let from = Oid::parse(&format!("{req_count}.5.2")).unwrap();
        tree()
            .next(from.as_slice(), &s, &mut next, |_| true)
            .unwrap();
        assert_eq!(next.to_string(), format!("{req_count}.5.4"));
        let from = Oid::parse(&format!("{req_count}.3.9")).unwrap();
        tree()
            .next(from.as_slice(), &s, &mut next, |_| true)
            .unwrap();
        assert_eq!(next.to_string(), format!("{req_count}.5.1"));
        let from = Oid::parse(&format!("{req_count}.7")).unwrap();
        tree()
            .next(from.as_slice(), &s, &mut next, |_| true)
            .unwrap();
        assert!(!next.starts_with(req_count.as_slice()));
        // The end of the tree ends the walk.
        assert!(tree().next(&[2], &s, &mut next, |_| true).is_none());
    }

    #[test]
    fn get_checks_minutes_and_rows() {
        let s = shape();
        let base = "1.3.6.1.4.1.40001.1.4.3.1.11.11.10.9";
        let get = |o: &str| {
            tree()
                .get(Oid::parse(o).unwrap().as_slice(), &s)
                .map(|i| (i.minute, i.index))
        };
        assert_eq!(get(&format!("{base}.60.4")), Ok((Some(60), Some(4))));
        assert_eq!(get(&format!("{base}.0.1")), Ok((Some(0), Some(1))));
        assert_eq!(get(&format!("{base}.61.1")), Err(Missing::Instance));
        assert_eq!(get(&format!("{base}.5.3")), Err(Missing::Instance));
        assert_eq!(get(&format!("{base}.5")), Err(Missing::Instance));
        assert_eq!(get("1.3.6.1.4.1.40001.1.9"), Err(Missing::Object));
        assert_eq!(get("1.3.6.1.4.1.40001.1.1.3"), Ok((None, None)));
        assert_eq!(get("1.3.6.1.4.1.40001.1.1.3.0"), Err(Missing::Instance));
    }

    #[test]
    fn hidden_rows_are_skipped() {
        let s = shape();
        let base = Oid::parse("1.3.6.1.4.1.40001.1.4.3.1.11.11.10.9.5").unwrap();
        let mut next = Oid::empty();
        tree()
            .next(base.as_slice(), &s, &mut next, |o| {
                o.last() != Some(&1) || !o.starts_with(base.as_slice())
            })
            .unwrap();
        assert_eq!(next.to_string(), format!("{base}.2"));
    }
}
