//! Configuration errors: every one names the file, the line and the element.

use std::fmt;

use super::xml::Loc;

/// Where a configuration problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A line in server.xml or vhosts.xml.
    Line(Loc),
    /// A whole file (unreadable, missing) or a path outside the XML files.
    File(String),
    /// A value taken from the documented default, not from any file.
    Default,
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Where it is.
    pub place: Place,
    /// The element (without brackets), or empty for file-level problems.
    pub element: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl ConfigError {
    /// A problem at a line of a configuration file.
    pub fn at(loc: Loc, element: &str, message: String) -> Self {
        ConfigError {
            place: Place::Line(loc),
            element: element.to_string(),
            message,
        }
    }

    /// A problem with a whole file.
    pub fn file(path: impl Into<String>, message: String) -> Self {
        ConfigError {
            place: Place::File(path.into()),
            element: String::new(),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::Line(loc) => write!(f, "{loc}: ")?,
            Place::File(p) => write!(f, "{p}: ")?,
            Place::Default => write!(f, "(default): ")?,
        }
        if !self.element.is_empty() {
            write!(f, "<{}>: ", self.element)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one configuration, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}
