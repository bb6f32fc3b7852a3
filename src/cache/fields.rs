//! A stored response's header fields, kept compact: the index holds one per
//! cached object, and a `HeaderMap` costs several times the bytes of its
//! fields (buckets, hash indices, spare capacity). A response built from them
//! gets a `HeaderMap` of its own ([`Fields::to_map`]), as it would by cloning.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Header fields in their order: each name with the end of its value, and
/// every value one after another in one buffer. Cloning shares both.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    /// Each field's name and where its value ends in `values`.
    names: Arc<[(HeaderName, u32)]>,
    /// The values, back to back.
    values: Bytes,
}

impl Fields {
    /// The fields of `map`, in its order.
    pub fn from_map(map: &HeaderMap) -> Fields {
        let mut values = BytesMut::with_capacity(map.values().map(|v| v.len()).sum());
        let names = map
            .iter()
            .map(|(name, value)| {
                values.extend_from_slice(value.as_bytes());
                (name.clone(), values.len() as u32)
            })
            .collect();
        Fields {
            names,
            values: values.freeze(),
        }
    }

    /// Each field's name with where its value starts and ends in `values`.
    fn positions(&self) -> impl Iterator<Item = (&HeaderName, usize, usize)> {
        let mut start = 0;
        self.names.iter().map(move |(name, end)| {
            let field = (name, start, *end as usize);
            start = *end as usize;
            field
        })
    }

    fn value(&self, start: usize, end: usize) -> HeaderValue {
        HeaderValue::from_maybe_shared(self.values.slice(start..end))
            .expect("the bytes of a valid value")
    }

    /// Every field with its value.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, HeaderValue)> {
        self.positions()
            .map(|(name, start, end)| (name, self.value(start, end)))
    }

    /// A `HeaderMap` with the fields, for a response to change.
    pub fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.names.len());
        for (name, value) in self.iter() {
            map.append(name.clone(), value);
        }
        map
    }

    /// The values of the fields named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = HeaderValue> + 'a {
        self.positions()
            .filter(move |(n, ..)| *n == name)
            .map(|(_, start, end)| self.value(start, end))
    }

    /// The first value of the fields named `name`.
    pub fn get(&self, name: &HeaderName) -> Option<HeaderValue> {
        self.get_all(name).next()
    }

    /// The first value of the fields named `name` as text, if it is visible
    /// ASCII (as `HeaderValue::to_str` has it).
    pub fn get_str(&self, name: &HeaderName) -> Option<&str> {
        let (_, start, end) = self.positions().find(|(n, ..)| *n == name)?;
        let bytes = &self.values[start..end];
        let visible = bytes.iter().all(|&b| b == b'\t' || (32..127).contains(&b));
        visible.then(|| std::str::from_utf8(bytes).ok()).flatten()
    }

    /// Whether a field is named `name`.
    pub fn contains_key(&self, name: &HeaderName) -> bool {
        self.names.iter().any(|(n, _)| n == name)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_names_values_and_order() {
        let mut map = HeaderMap::new();
        map.append("content-type", HeaderValue::from_static("text/plain"));
        map.append("x-custom", HeaderValue::from_static("one"));
        map.append("set-cookie-not", HeaderValue::from_static(""));
        map.append("x-custom", HeaderValue::from_static("two"));
        let fields = Fields::from_map(&map);
        assert_eq!(fields.len(), 4);
        assert_eq!(fields.to_map(), map);
        let custom = HeaderName::from_static("x-custom");
        let all: Vec<_> = fields.get_all(&custom).collect();
        assert_eq!(all, ["one", "two"]);
        assert_eq!(fields.get(&custom).unwrap(), "one");
        assert_eq!(fields.get_str(&custom), Some("one"));
        assert_eq!(
            fields.get_str(&http::header::CONTENT_TYPE),
            Some("text/plain")
        );
        assert_eq!(fields.get_str(&http::header::ETAG), None);
        assert!(fields.contains_key(&http::header::CONTENT_TYPE));
        assert!(!fields.contains_key(&http::header::ETAG));
        assert!(Fields::default().is_empty());
    }
}
