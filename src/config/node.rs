//! Reading settings through `<VHostDefault>` inheritance.
//!
//! A [`Node`] looks at a vhost's own element first and at the `<VHostDefault>`
//! element second, attribute by attribute, then at the guide's documented
//! default. So a vhost "inherits every setting and overrides only what it sets"
//! (chapter 3), and an error always points at the line the value came from.

use super::error::{ConfigError, Place};
use super::schema::schema;
use super::xml::{Element, Loc};

/// One setting (element) as one vhost sees it.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    /// The element written in the more specific scope (the `<Vhost>`).
    own: Option<&'a Element>,
    /// The element written in `<VHostDefault>`, if this setting inherits.
    base: Option<&'a Element>,
    /// Path in the element table (`Server/VHostDefault/Options/TTL`).
    path: String,
}

/// A raw setting value and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    /// The text as written (or the documented default).
    pub raw: &'a str,
    /// Where it was written; `None` for the documented default.
    pub loc: Option<Loc>,
    /// Element name, for messages.
    pub element: &'a str,
    /// Attribute name, when the value is an attribute.
    pub attr: Option<&'a str>,
}

impl<'a> Value<'a> {
    /// An error about this value, placed at its line.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        let message = message.into();
        ConfigError {
            place: self.loc.map_or(Place::Default, Place::Line),
            element: self.element.to_string(),
            message: match self.attr {
                Some(a) => format!("{a}: {message}"),
                None => message,
            },
        }
    }

    /// Parses with `f`, turning its message into a placed error.
    pub fn parse<T>(&self, f: impl FnOnce(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        f(self.raw.trim()).map_err(|m| self.error(m))
    }
}

impl<'a> Node<'a> {
    /// A node for a setting that may be written in `own` and inherited from `base`.
    pub fn new(own: Option<&'a Element>, base: Option<&'a Element>, path: &str) -> Self {
        for e in own.iter().chain(base.iter()) {
            e.used.set(true);
        }
        Node {
            own,
            base,
            path: path.to_string(),
        }
    }

    /// The child setting `name` (the first element of that name in each scope).
    pub fn child(&self, name: &str) -> Node<'a> {
        let pick = |e: Option<&'a Element>| e.and_then(|e| e.children_named(name).next());
        Node::new(
            pick(self.own),
            pick(self.base),
            &format!("{}/{name}", self.path),
        )
    }

    /// Every element `name` of the most specific scope that has any: lists such as
    /// `<Alias>` or `<Address>` are replaced as a whole, not merged.
    pub fn list(&self, name: &str) -> Vec<&'a Element> {
        self.ordered(&[name])
    }

    /// Every element named one of `names`, in file order, of the most specific scope
    /// that has any (`<Allow>`/`<Deny>` lists, where order decides).
    pub fn ordered(&self, names: &[&str]) -> Vec<&'a Element> {
        let of = |e: Option<&'a Element>| -> Vec<&'a Element> {
            e.map(|e| {
                e.children
                    .iter()
                    .filter(|c| names.contains(&c.name.as_str()))
                    .collect()
            })
            .unwrap_or_default()
        };
        let mut found = of(self.own);
        if found.is_empty() {
            found = of(self.base);
        }
        for e in &found {
            e.used.set(true);
        }
        found
    }

    /// Whether any scope writes this element.
    pub fn is_written(&self) -> bool {
        self.own.is_some() || self.base.is_some()
    }

    /// Where the most specific scope writes it.
    pub fn loc(&self) -> Option<Loc> {
        self.own.or(self.base).map(|e| e.loc)
    }

    /// The table path (`Server/VHostDefault/Log/Access`).
    pub fn path(&self) -> &str {
        &self.path
    }

    fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }

    /// The element's text: the vhost's if it sets one, else `<VHostDefault>`'s,
    /// else the documented default. `None` when none of them gives a value.
    pub fn value(&self) -> Option<Value<'a>> {
        // An element written with attributes only (`<Res2xx Ratio="30"/>`)
        // overrides the attributes and keeps the inherited text.
        let written = self.own.into_iter().chain(self.base);
        if let Some(e) = written
            .into_iter()
            .find(|e| !e.text.is_empty() || e.attrs.is_empty())
        {
            return Some(Value {
                raw: &e.text,
                loc: Some(e.loc),
                element: &e.name,
                attr: None,
            });
        }
        let spec = schema().elements.get(self.path.as_str())?;
        (!spec.default.is_empty()).then(|| Value {
            raw: spec.default,
            loc: None,
            element: self.static_name(),
            attr: None,
        })
    }

    /// Attribute `name`: the vhost's, else `<VHostDefault>`'s, else the documented default.
    pub fn attr(&self, name: &str) -> Option<Value<'a>> {
        for e in self.own.iter().chain(self.base.iter()) {
            if let Some(a) = e.attr(name) {
                a.used.set(true);
                return Some(Value {
                    raw: &a.value,
                    loc: Some(e.loc),
                    element: &e.name,
                    attr: Some(&a.name),
                });
            }
        }
        let spec = schema().elements.get(self.path.as_str())?.attr(name)?;
        (!spec.default.is_empty()).then(|| Value {
            raw: spec.default,
            loc: None,
            element: self.static_name(),
            attr: Some(spec.name),
        })
    }

    /// The table's default for attribute `name`, whatever is written.
    pub fn attr_default(&self, name: &str) -> Option<&'static str> {
        let spec = schema().elements.get(self.path.as_str())?.attr(name)?;
        (!spec.default.is_empty()).then_some(spec.default)
    }

    /// The element name with a 'static lifetime, for defaults that come from the table.
    fn static_name(&self) -> &'static str {
        let (path, _) = schema()
            .elements
            .get_key_value(self.path.as_str())
            .expect("called only for documented paths");
        path.rsplit('/').next().unwrap_or(path)
    }

    /// A placed error about the element itself.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            place: self.loc().map_or(Place::Default, Place::Line),
            element: self.name().to_string(),
            message: message.into(),
        }
    }
}

/// Where something that was written but not consumed by the typed reader is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unused {
    /// Table path, with `@Attr` for attributes.
    pub path: String,
    /// First place it is written (`server.xml:12`, or a `svc/` file path).
    pub place: String,
}

/// Lists what a document writes that the typed reader never read: the
/// elements and attributes that are recognised but not implemented yet.
pub fn unused(root: &Element, out: &mut Vec<Unused>) {
    fn visit(el: &Element, raw: &str, out: &mut Vec<Unused>) {
        let path = super::schema::canonical(raw).into_owned();
        if !el.used.get() {
            push(out, path, el.loc);
            return;
        }
        for a in el.attrs.iter().filter(|a| !a.used.get()) {
            push(out, format!("{path}@{}", a.name), el.loc);
        }
        for c in &el.children {
            visit(c, &format!("{raw}/{}", c.name), out);
        }
    }
    fn push(out: &mut Vec<Unused>, path: String, loc: Loc) {
        if !out.iter().any(|u| u.path == path) {
            out.push(Unused {
                path,
                place: loc.to_string(),
            });
        }
    }
    visit(root, &root.name, out);
}
