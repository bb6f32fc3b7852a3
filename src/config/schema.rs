//! The element table: every element, attribute and `svc/*.txt` file the guide
//! documents, with its default and allowed values.
//!
//! `elements.tsv` is the spec's `config-elements.tsv`, embedded as it is (a test
//! keeps it identical to `../shared/spec/`). One table drives validation
//! (unknown elements, unknown attributes, enum values), the documented
//! defaults the typed reader falls back to, and `kurad check --elements`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use super::error::ConfigError;
use super::xml::Element;

const TABLE: &str = include_str!("elements.tsv");

/// What the table says about one attribute.
#[derive(Debug)]
pub struct AttrSpec {
    /// Attribute name.
    pub name: &'static str,
    /// Documented default ("" when none).
    pub default: &'static str,
    /// Allowed values as the guide words them.
    pub values: &'static str,
}

/// What the table says about one element.
#[derive(Debug, Default)]
pub struct ElementSpec {
    /// Documented default of the element's text ("" when none).
    pub default: &'static str,
    /// Allowed values as the guide words them.
    pub values: &'static str,
    /// Documented attributes.
    pub attrs: Vec<AttrSpec>,
}

impl ElementSpec {
    /// The spec of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&AttrSpec> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

/// The parsed table.
#[derive(Debug)]
pub struct Schema {
    /// Element path (`Server/Cache/Storage`) to its spec.
    pub elements: HashMap<&'static str, ElementSpec>,
    /// `svc/<vhost>/NAME.txt` file names.
    pub text_files: Vec<&'static str>,
}

/// The table, parsed once.
pub fn schema() -> &'static Schema {
    static SCHEMA: LazyLock<Schema> = LazyLock::new(|| parse_table(TABLE));
    &SCHEMA
}

fn parse_table(table: &'static str) -> Schema {
    let mut elements: HashMap<&'static str, ElementSpec> = HashMap::new();
    let mut text_files = Vec::new();
    for row in table.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&'static str> = row.split('\t').collect();
        let [_file, path, kind, name, default, values, ..] = f[..] else {
            panic!("elements.tsv: short row: {row}");
        };
        match kind {
            "element" => {
                let e = elements.entry(path).or_default();
                e.default = default;
                e.values = values;
            }
            "attribute" => elements.entry(path).or_default().attrs.push(AttrSpec {
                name,
                default,
                values,
            }),
            "textfile" => text_files.push(name),
            other => panic!("elements.tsv: unknown kind {other}"),
        }
    }
    Schema {
        elements,
        text_files,
    }
}

/// Groups of a `<Vhost>` that mirror `<VHostDefault>` and inherit from it.
pub const INHERITED_GROUPS: [&str; 5] = ["Options", "OriginOptions", "Media", "Stats", "Log"];

/// Maps a raw document path to the table's path: settings under a `<Vhost>`
/// group are documented once, under `Server/VHostDefault`.
pub fn canonical(raw: &str) -> Cow<'_, str> {
    if schema().elements.contains_key(raw) {
        return Cow::Borrowed(raw);
    }
    if let Some(rest) = raw.strip_prefix("Vhosts/Vhost/") {
        let group = rest.split('/').next().unwrap_or("");
        if INHERITED_GROUPS.contains(&group) {
            return Cow::Owned(format!("Server/VHostDefault/{rest}"));
        }
    }
    Cow::Borrowed(raw)
}

/// The closed list of values when the table gives one (`ON|OFF`, `hang|bypass|selfkill`).
pub fn enum_values(values: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = values.split('|').collect();
    let is_word = |p: &&str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    };
    (parts.len() > 1 && parts.iter().all(is_word)).then_some(parts)
}

/// Checks a value against a closed list (case-insensitive, as the guide's own
/// examples mix `on` and `ON`).
fn check_enum(values: &str, value: &str) -> Result<(), String> {
    match enum_values(values) {
        Some(allowed) if !allowed.iter().any(|a| a.eq_ignore_ascii_case(value.trim())) => {
            Err(format!(
                "unknown value \"{value}\" (expected one of {})",
                allowed.join(", ")
            ))
        }
        _ => Ok(()),
    }
}

/// Reports every element, attribute or enum value of a document that the guide
/// does not define.
pub fn validate(root: &Element) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let table = schema();
    root.walk("", &mut |raw, el| {
        let path = canonical(raw);
        let Some(spec) = table.elements.get(path.as_ref()) else {
            errors.push(ConfigError::at(
                el.loc,
                &el.name,
                format!("unknown element (no {path} in the guide)"),
            ));
            return;
        };
        if el.children.is_empty() && !el.text.is_empty() {
            if let Err(m) = check_enum(spec.values, &el.text) {
                errors.push(ConfigError::at(el.loc, &el.name, m));
            }
        }
        for a in &el.attrs {
            match spec.attr(&a.name) {
                None => errors.push(ConfigError::at(
                    el.loc,
                    &el.name,
                    format!("unknown attribute {}", a.name),
                )),
                Some(aspec) => {
                    if let Err(m) = check_enum(aspec.values, &a.value) {
                        errors.push(ConfigError::at(
                            el.loc,
                            &el.name,
                            format!("{}: {m}", a.name),
                        ));
                    }
                }
            }
        }
    });
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhost_groups_map_to_vhostdefault() {
        assert_eq!(
            canonical("Vhosts/Vhost/Options/TTL/Res2xx"),
            "Server/VHostDefault/Options/TTL/Res2xx"
        );
        assert_eq!(
            canonical("Vhosts/Vhost/Origin/Address"),
            "Vhosts/Vhost/Origin/Address"
        );
        assert_eq!(
            canonical("Vhosts/Vhost/OriginOptions/URLRewrite"),
            "Vhosts/Vhost/OriginOptions/URLRewrite"
        );
    }

    #[test]
    fn enums_are_recognised_only_when_closed() {
        assert_eq!(enum_values("ON|OFF"), Some(vec!["ON", "OFF"]));
        assert_eq!(enum_values("hang|bypass|selfkill").unwrap().len(), 3);
        assert_eq!(enum_values("seconds (time units allowed)"), None);
        assert_eq!(enum_values("Active|Inactive|facade:<vhost name>"), None);
        assert!(check_enum("ON|OFF", "on").is_ok());
        assert!(check_enum("ON|OFF", "maybe").is_err());
    }
}
