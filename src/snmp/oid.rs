//! Object identifiers: a fixed-size value (no allocation on the request path)
//! ordered the way SNMP walks them, sub-identifier by sub-identifier as integers.

use std::cmp::Ordering;
use std::fmt;

/// The most sub-identifiers an OID may have (RFC 2578 section 3.5).
pub const MAX_SUBIDS: usize = 128;

/// An OID of up to [`MAX_SUBIDS`] sub-identifiers.
#[derive(Clone, Copy)]
pub struct Oid {
    /// Sub-identifiers in use.
    len: u8,
    /// Sub-identifiers; only `..len` are meaningful.
    ids: [u32; MAX_SUBIDS],
}

/// A dotted OID that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an OID: {0:?}")]
pub struct OidParseError(pub String);

impl Oid {
    /// The empty OID (sorts before every other).
    pub const fn empty() -> Oid {
        Oid {
            len: 0,
            ids: [0; MAX_SUBIDS],
        }
    }

    /// An OID from sub-identifiers; `None` when there are too many.
    pub fn from_slice(ids: &[u32]) -> Option<Oid> {
        let mut o = Oid::empty();
        o.extend(ids).then_some(o)
    }

    /// The sub-identifiers.
    pub fn as_slice(&self) -> &[u32] {
        &self.ids[..usize::from(self.len)]
    }

    /// Number of sub-identifiers.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there are no sub-identifiers.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one sub-identifier; false (and unchanged) when full.
    pub fn push(&mut self, id: u32) -> bool {
        if self.len() == MAX_SUBIDS {
            return false;
        }
        self.ids[self.len()] = id;
        self.len += 1;
        true
    }

    /// Appends sub-identifiers; false (and unchanged) when they do not fit.
    pub fn extend(&mut self, ids: &[u32]) -> bool {
        let n = self.len();
        if n + ids.len() > MAX_SUBIDS {
            return false;
        }
        self.ids[n..n + ids.len()].copy_from_slice(ids);
        self.len += ids.len() as u8;
        true
    }

    /// Keeps the first `n` sub-identifiers.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n as u8);
    }

    /// Whether `prefix` is a prefix of (or equal to) this OID.
    pub fn starts_with(&self, prefix: &[u32]) -> bool {
        self.as_slice().starts_with(prefix)
    }

    /// Reads a dotted OID (`1.3.6.1`, a leading dot allowed).
    pub fn parse(s: &str) -> Result<Oid, OidParseError> {
        let err = || OidParseError(s.to_string());
        let body = s.trim().strip_prefix('.').unwrap_or(s.trim());
        let mut o = Oid::empty();
        for part in body.split('.') {
            let id = part.parse::<u32>().map_err(|_| err())?;
            if !o.push(id) {
                return Err(err());
            }
        }
        Ok(o)
    }
}

impl PartialEq for Oid {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Oid {}

impl PartialOrd for Oid {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Oid {
    /// Sub-identifiers compared as integers; a prefix sorts first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_numeric_per_sub_identifier() {
        let p = |s| Oid::parse(s).unwrap();
        assert!(p("1.3.6.1.2") < p("1.3.6.1.10"));
        assert!(p("1.3.6") < p("1.3.6.0"));
        assert!(p("1.3.6.1.4294967295") > p("1.3.6.1.268435456"));
        assert_eq!(p(".1.3.6").to_string(), "1.3.6");
        assert!(Oid::parse("1.3.x").is_err());
        assert!(Oid::parse("1.3.4294967296").is_err());
    }
}
