//! A small XML element tree that remembers where every element came from.
//!
//! quick-xml does the tokenising; this module keeps line numbers so every config
//! error can say `vhosts.xml:14: <Listen>: ...`, and marks which elements and
//! attributes the typed reader consumed, so what is recognised but not yet
//! implemented is reported instead of silently dropped.

use std::cell::Cell;
use std::fmt;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::error::ConfigError;

/// Which configuration file a node was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfFile {
    /// The global configuration, `server.xml`.
    Server,
    /// The virtual host configuration, `vhosts.xml`.
    Vhosts,
}

impl ConfFile {
    /// The file name as operators know it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfFile::Server => "server.xml",
            ConfFile::Vhosts => "vhosts.xml",
        }
    }
}

/// A position in a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// The file the node was read from.
    pub file: ConfFile,
    /// 1-based line of the element's start tag.
    pub line: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.as_str(), self.line)
    }
}

/// One attribute of an element.
#[derive(Debug)]
pub struct Attr {
    /// Attribute name as written.
    pub name: String,
    /// Unescaped value.
    pub value: String,
    /// Set once the typed reader looked at it.
    pub used: Cell<bool>,
}

/// One element with its attributes, text and children.
#[derive(Debug)]
pub struct Element {
    /// Tag name as written.
    pub name: String,
    /// Attributes in document order.
    pub attrs: Vec<Attr>,
    /// Text and CDATA content, trimmed.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Where the start tag is.
    pub loc: Loc,
    /// Set once the typed reader looked at it.
    pub used: Cell<bool>,
}

impl Element {
    /// The first attribute called `name`, if any.
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// Child elements called `name`.
    pub fn children_named<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s Element> + use<'s, 'n> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Calls `f` with the slash-separated path of this element and of every descendant.
    pub fn walk<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Element)) {
        let path = if prefix.is_empty() {
            self.name.clone()
        } else {
            format!("{prefix}/{}", self.name)
        };
        f(&path, self);
        for c in &self.children {
            c.walk(&path, f);
        }
    }
}

/// Tracks the line number of a byte offset without rescanning from the start.
struct LineCounter<'a> {
    text: &'a str,
    pos: usize,
    line: u32,
}

impl LineCounter<'_> {
    fn line_at(&mut self, offset: usize) -> u32 {
        let offset = offset.min(self.text.len());
        if offset >= self.pos {
            self.line += self.text.as_bytes()[self.pos..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u32;
            self.pos = offset;
        }
        self.line
    }
}

/// Parses a whole document into its root element.
pub fn parse(file: ConfFile, text: &str) -> Result<Element, ConfigError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut lines = LineCounter {
        text,
        pos: 0,
        line: 1,
    };
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            let line = lines.line_at(reader.error_position() as usize);
            ConfigError::at(Loc { file, line }, "", format!("malformed XML: {e}"))
        })?;
        // The event starts at the first '<' after the previous event's end.
        let start = text[before.min(text.len())..]
            .find('<')
            .map_or(before, |i| before + i);
        let self_closing = matches!(event, Event::Empty(_));
        match event {
            Event::Start(tag) | Event::Empty(tag) => {
                let line = lines.line_at(start);
                let loc = Loc { file, line };
                let name = String::from_utf8_lossy(tag.name().as_ref()).into_owned();
                let mut attrs = Vec::new();
                for a in tag.attributes() {
                    let a = a.map_err(|e| {
                        ConfigError::at(loc, &name, format!("malformed attribute: {e}"))
                    })?;
                    let value = a.unescape_value().map_err(|e| {
                        ConfigError::at(loc, &name, format!("malformed attribute value: {e}"))
                    })?;
                    attrs.push(Attr {
                        name: String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                        value: value.into_owned(),
                        used: Cell::new(false),
                    });
                }
                let el = Element {
                    name,
                    attrs,
                    text: String::new(),
                    children: Vec::new(),
                    loc,
                    used: Cell::new(false),
                };
                if self_closing {
                    attach(&mut stack, &mut root, el, loc)?;
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let mut el = stack.pop().expect("quick-xml checks tag balance");
                el.text = el.text.trim().to_string();
                let loc = el.loc;
                attach(&mut stack, &mut root, el, loc)?;
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.unescape().map_err(|e| {
                        let loc = Loc {
                            file,
                            line: lines.line_at(start),
                        };
                        ConfigError::at(loc, &top.name, format!("malformed text: {e}"))
                    })?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(ConfigError::at(
            open.loc,
            &open.name,
            "element is never closed".to_string(),
        ));
    }
    root.ok_or_else(|| ConfigError::at(Loc { file, line: 1 }, "", "no root element".to_string()))
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    el: Element,
    loc: Loc,
) -> Result<(), ConfigError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None if root.is_none() => *root = Some(el),
        None => {
            return Err(ConfigError::at(
                loc,
                &el.name,
                "a second root element".to_string(),
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_attributes_text_and_cdata() {
        let doc = "<?xml version=\"1.0\"?>\n<Vhosts>\n  <Vhost Name=\"a&amp;b\">\n    <Listen>*:80</Listen>\n    <P><![CDATA[x<y]]></P>\n  </Vhost>\n</Vhosts>\n";
        let root = parse(ConfFile::Vhosts, doc).unwrap();
        assert_eq!(root.loc.line, 2);
        let vh = &root.children[0];
        assert_eq!(vh.loc.line, 3);
        assert_eq!(vh.attr("Name").unwrap().value, "a&b");
        assert_eq!(vh.children[0].text, "*:80");
        assert_eq!(vh.children[0].loc.line, 4);
        assert_eq!(vh.children[1].text, "x<y");
    }

    #[test]
    fn mismatched_tag_names_its_line() {
        let err = parse(ConfFile::Server, "<Server>\n<Host>\n</Cache>\n</Server>").unwrap_err();
        assert!(err.to_string().starts_with("server.xml:3:"), "{err}");
    }
}
