//! The on-disk form of a cached object: the body, then its key and head, then a
//! fixed footer. The footer is read first (the last 32 bytes), so an index
//! rebuild reads two small pieces of each file and never its body.
//!
//! ```text
//! body (body_len bytes) | head record (head_len bytes) | footer (32 bytes)
//! footer: "KURAOBJ1" | body_len u64 | head_len u32 | body_crc u32 | head_crc u32 | 0u32
//! ```
//!
//! All integers are little-endian. A file whose length is not exactly
//! `body_len + head_len + 32`, whose magic or head checksum is wrong, or whose
//! head does not decode, is not an object (a crash tore it) and is deleted.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::fields::Fields;
use super::policy::Freshness;
use super::store::Head;
use crate::config::TtlSource;

/// Bytes of the footer.
pub const FOOTER_LEN: u64 = 32;

/// Identifies the format (and its version) at the start of the footer.
const MAGIC: &[u8; 8] = b"KURAOBJ1";

/// What the footer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Body bytes at the start of the file.
    pub body_len: u64,
    /// Bytes of the head record after the body.
    pub head_len: u32,
    /// CRC-32 of the body.
    pub body_crc: u32,
    /// CRC-32 of the head record.
    pub head_crc: u32,
}

impl Footer {
    /// The 32 footer bytes.
    pub fn encode(&self) -> [u8; FOOTER_LEN as usize] {
        let mut f = [0u8; FOOTER_LEN as usize];
        f[..8].copy_from_slice(MAGIC);
        f[8..16].copy_from_slice(&self.body_len.to_le_bytes());
        f[16..20].copy_from_slice(&self.head_len.to_le_bytes());
        f[20..24].copy_from_slice(&self.body_crc.to_le_bytes());
        f[24..28].copy_from_slice(&self.head_crc.to_le_bytes());
        f
    }

    /// Reads a footer; `None` when the magic is not ours.
    pub fn decode(f: &[u8]) -> Option<Footer> {
        if f.len() != FOOTER_LEN as usize || &f[..8] != MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(f[i..i + 4].try_into().expect("4 bytes"));
        Some(Footer {
            body_len: u64::from_le_bytes(f[8..16].try_into().expect("8 bytes")),
            head_len: u32_at(16),
            body_crc: u32_at(20),
            head_crc: u32_at(24),
        })
    }

    /// The length a file with this footer has.
    pub fn file_len(&self) -> u64 {
        self.body_len + u64::from(self.head_len) + FOOTER_LEN
    }
}

/// Milliseconds of a duration, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `TtlSource` as one byte, and back.
const SOURCES: [TtlSource; 4] = [
    TtlSource::CcNoCache,
    TtlSource::Custom,
    TtlSource::CcMaxAge,
    TtlSource::ResCode,
];

/// The head record of `key` and `head`. Times are written as wall-clock
/// milliseconds, since an `Instant` means nothing to the next process.
pub fn encode_head(key: &str, head: &Head) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + key.len());
    let put_bytes = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    let opt_ms = |d: Option<Duration>| d.map_or(u64::MAX, millis);
    put_bytes(&mut out, key.as_bytes());
    out.extend_from_slice(&head.status.as_u16().to_le_bytes());
    let age = Instant::now().saturating_duration_since(head.received_at);
    let received = SystemTime::now()
        .checked_sub(age)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default();
    let f = &head.freshness;
    for v in [
        millis(received),
        millis(f.lifetime),
        millis(f.initial_age),
        opt_ms(f.stale_while_revalidate),
        opt_ms(f.stale_if_error),
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let source = SOURCES.iter().position(|s| *s == f.source).unwrap_or(3) as u8;
    out.extend_from_slice(&[source, u8::from(f.no_stale), u8::from(head.purged)]);
    out.extend_from_slice(&(head.headers.len() as u32).to_le_bytes());
    for (name, value) in head.headers.iter() {
        put_bytes(&mut out, name.as_str().as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    out.extend_from_slice(&(head.vary.len() as u32).to_le_bytes());
    for (name, value) in &head.vary {
        put_bytes(&mut out, name.as_str().as_bytes());
        match value {
            Some(v) => {
                out.push(1);
                put_bytes(&mut out, v.as_bytes());
            }
            None => out.push(0),
        }
    }
    out
}

/// A reader over a head record; every read checks the bounds.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Decodes a head record into its key and head; `None` when it is not one.
/// Header values share the record's buffer (one allocation for all of them:
/// the index of a million objects rebuilt at start stays compact).
pub fn decode_head(record: &Bytes) -> Option<(String, Head)> {
    let mut c = Cursor(record);
    let value_at = |v: &[u8]| {
        let start = v.as_ptr() as usize - record.as_ptr() as usize;
        HeaderValue::from_maybe_shared(record.slice(start..start + v.len())).ok()
    };
    let key = std::str::from_utf8(c.bytes()?).ok()?.to_string();
    let status = StatusCode::from_u16(c.u16()?).ok()?;
    let received = Duration::from_millis(c.u64()?);
    let lifetime = Duration::from_millis(c.u64()?);
    let initial_age = Duration::from_millis(c.u64()?);
    let opt = |v: u64| (v != u64::MAX).then(|| Duration::from_millis(v));
    let stale_while_revalidate = opt(c.u64()?);
    let stale_if_error = opt(c.u64()?);
    let source = *SOURCES.get(usize::from(c.u8()?))?;
    let no_stale = c.u8()? != 0;
    let purged = c.u8()? != 0;
    let count = c.u32()? as usize;
    let mut headers = HeaderMap::with_capacity(count.min(record.len() / 8));
    for _ in 0..count {
        let name = HeaderName::from_bytes(c.bytes()?).ok()?;
        let value = value_at(c.bytes()?)?;
        headers.append(name, value);
    }
    let mut vary = Vec::new();
    for _ in 0..c.u32()? {
        let name = HeaderName::from_bytes(c.bytes()?).ok()?;
        let value = match c.u8()? {
            0 => None,
            _ => Some(value_at(c.bytes()?)?),
        };
        vary.push((name, value));
    }
    if !c.0.is_empty() {
        return None;
    }
    // The age it had when written plus the time since: a clock set back makes
    // it younger, never older than it is.
    let now_wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let age = now_wall.saturating_sub(received);
    let now = Instant::now();
    let received_at = now.checked_sub(age).unwrap_or(now);
    Some((
        key,
        Head {
            status,
            headers: Fields::from_map(&headers),
            received_at,
            freshness: Freshness {
                lifetime,
                initial_age,
                source,
                no_stale,
                stale_while_revalidate,
                stale_if_error,
            },
            vary,
            purged,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn head() -> Head {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("x-twice", HeaderValue::from_static("a"));
        headers.append("x-twice", HeaderValue::from_static("b"));
        Head {
            status: StatusCode::NOT_FOUND,
            headers: Fields::from_map(&headers),
            received_at: Instant::now() - Duration::from_secs(30),
            freshness: Freshness {
                lifetime: Duration::from_secs(600),
                initial_age: Duration::from_secs(5),
                source: TtlSource::CcMaxAge,
                no_stale: true,
                stale_while_revalidate: Some(Duration::from_secs(7)),
                stale_if_error: None,
            },
            vary: vec![
                (
                    HeaderName::from_static("accept-language"),
                    Some(HeaderValue::from_static("ja")),
                ),
                (HeaderName::from_static("x-none"), None),
            ],
            purged: true,
        }
    }

    #[test]
    fn a_head_comes_back_as_written() {
        let h = head();
        let (key, back) = decode_head(&encode_head("v\0/a", &h).into()).unwrap();
        assert_eq!(key, "v\0/a");
        assert_eq!(back.status, h.status);
        assert_eq!(back.headers.to_map(), h.headers.to_map());
        assert_eq!(back.vary, h.vary);
        assert_eq!(back.freshness.lifetime, h.freshness.lifetime);
        assert_eq!(back.freshness.initial_age, h.freshness.initial_age);
        assert_eq!(back.freshness.source, h.freshness.source);
        assert_eq!(
            back.freshness.stale_while_revalidate,
            Some(Duration::from_secs(7))
        );
        assert_eq!(back.freshness.stale_if_error, None);
        assert!(back.freshness.no_stale && back.purged);
        let age = back.age(Instant::now()).as_secs();
        assert!((34..=36).contains(&age), "initial 5 s + 30 s stored: {age}");
    }

    #[test]
    fn footers_round_trip_and_foreign_bytes_are_refused() {
        let f = Footer {
            body_len: 1 << 40,
            head_len: 300,
            body_crc: 0xdead_beef,
            head_crc: 7,
        };
        assert_eq!(Footer::decode(&f.encode()), Some(f));
        assert_eq!(f.file_len(), (1 << 40) + 300 + 32);
        assert_eq!(Footer::decode(&[0u8; 32]), None);
        assert_eq!(Footer::decode(&f.encode()[1..]), None);
    }

    proptest! {
        /// A torn or foreign record never decodes into a head with trailing
        /// garbage, and never panics.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_head(&bytes.into());
        }

        /// Every prefix of a real record is refused.
        #[test]
        fn truncated_records_are_refused(cut in 0usize..200) {
            let rec = encode_head("k", &head());
            prop_assume!(cut < rec.len());
            prop_assert!(decode_head(&Bytes::copy_from_slice(&rec[..cut])).is_none());
        }
    }
}
