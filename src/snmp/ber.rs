//! Our BER codec for SNMP v1/v2c messages (RFC 1157, RFC 3416).
//!
//! Decoding borrows from the datagram (the community and the variable bindings
//! are slices of it). Encoding writes into a reused buffer: the variable
//! bindings first, after some headroom, then the message header is written in
//! front of them once their length is known, so every length is in its
//! shortest form and nothing is copied or allocated per request.

use super::oid::Oid;

/// ASN.1 / SNMP tags used here.
pub mod tag {
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// SEQUENCE.
    pub const SEQUENCE: u8 = 0x30;
    /// IpAddress.
    pub const IP_ADDRESS: u8 = 0x40;
    /// Counter32.
    pub const COUNTER32: u8 = 0x41;
    /// Gauge32.
    pub const GAUGE32: u8 = 0x42;
    /// TimeTicks.
    pub const TIMETICKS: u8 = 0x43;
    /// Opaque.
    pub const OPAQUE: u8 = 0x44;
    /// Counter64.
    pub const COUNTER64: u8 = 0x46;
    /// noSuchObject exception (v2c).
    pub const NO_SUCH_OBJECT: u8 = 0x80;
    /// noSuchInstance exception (v2c).
    pub const NO_SUCH_INSTANCE: u8 = 0x81;
    /// endOfMibView exception (v2c).
    pub const END_OF_MIB_VIEW: u8 = 0x82;
}

/// Why a datagram is not an SNMP message we can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Ran out of bytes inside a TLV.
    #[error("truncated")]
    Truncated,
    /// A tag other than the one the grammar needs.
    #[error("unexpected tag {found:#04x}, wanted {wanted:#04x}")]
    UnexpectedTag {
        /// Tag wanted.
        wanted: u8,
        /// Tag found.
        found: u8,
    },
    /// Indefinite, over-long or non-minimal length.
    #[error("bad length")]
    BadLength,
    /// An INTEGER outside 32 bits or with no content.
    #[error("bad integer")]
    BadInteger,
    /// An OID with a bad encoding or more than 128 sub-identifiers.
    #[error("bad object identifier")]
    BadOid,
    /// Bytes after the message.
    #[error("trailing bytes")]
    Trailing,
    /// A version other than v1 (0) or v2c (1).
    #[error("unsupported version {0}")]
    Version(i32),
    /// A PDU type an agent does not take (responses, traps, reports).
    #[error("unsupported PDU type {0:#04x}")]
    PduType(u8),
}

/// Protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// SNMPv1 (version field 0).
    V1,
    /// SNMPv2c (version field 1).
    V2c,
}

impl Version {
    fn field(self) -> i32 {
        match self {
            Version::V1 => 0,
            Version::V2c => 1,
        }
    }
}

/// Request PDU types an agent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PduType {
    /// GetRequest-PDU.
    Get,
    /// GetNextRequest-PDU.
    GetNext,
    /// GetBulkRequest-PDU (v2c only).
    GetBulk,
    /// SetRequest-PDU.
    Set,
}

impl PduType {
    fn from_tag(t: u8) -> Option<PduType> {
        Some(match t {
            0xA0 => PduType::Get,
            0xA1 => PduType::GetNext,
            0xA3 => PduType::Set,
            0xA5 => PduType::GetBulk,
            _ => return None,
        })
    }
}

/// Tag of a Response-PDU.
pub const RESPONSE_PDU: u8 = 0xA2;

/// error-status values (RFC 3416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorStatus {
    /// noError.
    NoError = 0,
    /// tooBig.
    TooBig = 1,
    /// noSuchName (v1).
    NoSuchName = 2,
    /// genErr.
    GenErr = 5,
    /// notWritable (v2c).
    NotWritable = 17,
}

/// A decoded request; slices point into the datagram.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Protocol version.
    pub version: Version,
    /// Community string.
    pub community: &'a [u8],
    /// PDU type.
    pub pdu: PduType,
    /// request-id.
    pub request_id: i32,
    /// error-status, or non-repeaters for GetBulk.
    pub non_repeaters: i32,
    /// error-index, or max-repetitions for GetBulk.
    pub max_repetitions: i32,
    /// Content of the variable-bindings SEQUENCE, already checked well-formed.
    pub varbinds: &'a [u8],
}

/// A cursor over BER bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next TLV: its tag and its content.
    fn tlv(&mut self) -> Result<(u8, &'a [u8]), DecodeError> {
        let (&t, rest) = self.buf.split_first().ok_or(DecodeError::Truncated)?;
        if t & 0x1F == 0x1F {
            // High tag numbers never occur in SNMP.
            return Err(DecodeError::UnexpectedTag {
                wanted: tag::SEQUENCE,
                found: t,
            });
        }
        let (&first, mut rest) = rest.split_first().ok_or(DecodeError::Truncated)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7F);
            // 0x80 is the indefinite form, which SNMP forbids; four bytes cover any datagram.
            if n == 0 || n > 4 || rest.len() < n {
                return Err(DecodeError::BadLength);
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, b| (a << 8) | usize::from(*b));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (content, rest) = rest.split_at(len);
        self.buf = rest;
        Ok((t, content))
    }

    fn expect(&mut self, wanted: u8) -> Result<&'a [u8], DecodeError> {
        let (found, content) = self.tlv()?;
        if found != wanted {
            return Err(DecodeError::UnexpectedTag { wanted, found });
        }
        Ok(content)
    }

    fn integer(&mut self) -> Result<i32, DecodeError> {
        decode_i32(self.expect(tag::INTEGER)?)
    }
}

/// A two's-complement INTEGER of at most 32 bits.
fn decode_i32(c: &[u8]) -> Result<i32, DecodeError> {
    if c.is_empty() || c.len() > 4 {
        return Err(DecodeError::BadInteger);
    }
    let init: i32 = if c[0] & 0x80 != 0 { -1 } else { 0 };
    Ok(c.iter().fold(init, |a, b| (a << 8) | i32::from(*b)))
}

/// Decodes an OID's content octets.
pub fn decode_oid(c: &[u8]) -> Result<Oid, DecodeError> {
    let mut oid = Oid::empty();
    let mut acc: u64 = 0;
    let mut fresh = true;
    for &b in c {
        if fresh && b == 0x80 {
            // A leading 0x80 is a non-minimal encoding.
            return Err(DecodeError::BadOid);
        }
        acc = (acc << 7) | u64::from(b & 0x7F);
        if acc > u64::from(u32::MAX) + 80 {
            return Err(DecodeError::BadOid);
        }
        fresh = b & 0x80 == 0;
        if fresh {
            let ok = if oid.is_empty() {
                // The first sub-identifier packs two: 40 * a + b, a in 0..=2.
                let (a, b) = match acc {
                    0..=39 => (0, acc),
                    40..=79 => (1, acc - 40),
                    _ => (2, acc - 80),
                };
                u32::try_from(b).is_ok_and(|b| oid.push(a) && oid.push(b))
            } else {
                u32::try_from(acc).is_ok_and(|v| oid.push(v))
            };
            if !ok {
                return Err(DecodeError::BadOid);
            }
            acc = 0;
        }
    }
    if !fresh || oid.is_empty() {
        return Err(DecodeError::BadOid);
    }
    Ok(oid)
}

/// Decodes one request datagram. Every variable binding is checked to be a
/// well-formed `SEQUENCE { OID, value }` so nothing is answered from garbage.
pub fn decode_request(datagram: &[u8]) -> Result<Request<'_>, DecodeError> {
    let mut outer = Reader { buf: datagram };
    let msg = outer.expect(tag::SEQUENCE)?;
    if !outer.is_empty() {
        return Err(DecodeError::Trailing);
    }
    let mut m = Reader { buf: msg };
    let version = match m.integer()? {
        0 => Version::V1,
        1 => Version::V2c,
        v => return Err(DecodeError::Version(v)),
    };
    let community = m.expect(tag::OCTET_STRING)?;
    let (pdu_tag, pdu) = m.tlv()?;
    if !m.is_empty() {
        return Err(DecodeError::Trailing);
    }
    let pdu_type = PduType::from_tag(pdu_tag)
        .filter(|p| *p != PduType::GetBulk || version == Version::V2c)
        .ok_or(DecodeError::PduType(pdu_tag))?;
    let mut p = Reader { buf: pdu };
    let request_id = p.integer()?;
    let non_repeaters = p.integer()?;
    let max_repetitions = p.integer()?;
    let varbinds = p.expect(tag::SEQUENCE)?;
    if !p.is_empty() {
        return Err(DecodeError::Trailing);
    }
    for vb in VarBinds::new(varbinds) {
        vb?;
    }
    Ok(Request {
        version,
        community,
        pdu: pdu_type,
        request_id,
        non_repeaters,
        max_repetitions,
        varbinds,
    })
}

/// The variable bindings of a request: each name, and the raw value TLV.
pub struct VarBinds<'a> {
    reader: Reader<'a>,
}

impl<'a> VarBinds<'a> {
    /// Iterates the content of a variable-bindings SEQUENCE.
    pub fn new(content: &'a [u8]) -> Self {
        VarBinds {
            reader: Reader { buf: content },
        }
    }
}

impl Iterator for VarBinds<'_> {
    type Item = Result<Oid, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.reader.is_empty() {
            return None;
        }
        let item = (|| {
            let vb = self.reader.expect(tag::SEQUENCE)?;
            let mut r = Reader { buf: vb };
            let oid = decode_oid(r.expect(tag::OID)?)?;
            let (t, content) = r.tlv()?;
            if !is_value(t, content) {
                // Not an ObjectSyntax: a v1 error reply would echo it back.
                return Err(DecodeError::UnexpectedTag {
                    wanted: tag::NULL,
                    found: t,
                });
            }
            if !r.is_empty() {
                return Err(DecodeError::Trailing);
            }
            Ok(oid)
        })();
        if item.is_err() {
            self.reader.buf = &[];
        }
        Some(item)
    }
}

/// Whether `t` with `content` is a binding's value: NULL, a simple or application
/// syntax of its size (RFC 2578), or a v2c exception. A v1 error reply echoes
/// the request's values, so none that a manager could not read is accepted.
fn is_value(t: u8, content: &[u8]) -> bool {
    let n = content.len();
    match t {
        tag::NULL | tag::NO_SUCH_OBJECT | tag::NO_SUCH_INSTANCE | tag::END_OF_MIB_VIEW => n == 0,
        tag::INTEGER => (1..=4).contains(&n),
        // Unsigned 32 bits: a leading zero byte when the top bit is set.
        tag::COUNTER32 | tag::GAUGE32 | tag::TIMETICKS => (1..=5).contains(&n),
        tag::COUNTER64 => (1..=9).contains(&n),
        tag::IP_ADDRESS => n == 4,
        tag::OID => decode_oid(content).is_ok(),
        tag::OCTET_STRING | tag::OPAQUE => true,
        _ => false,
    }
}

/// A value to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// INTEGER (Integer32).
    Integer(i32),
    /// OCTET STRING.
    Str(&'a [u8]),
    /// OBJECT IDENTIFIER.
    ObjectId(&'a [u32]),
    /// TimeTicks (hundredths of a second, wrapping at 2^32).
    TimeTicks(u32),
    /// Counter32.
    Counter32(u32),
    /// noSuchObject (v2c).
    NoSuchObject,
    /// noSuchInstance (v2c).
    NoSuchInstance,
    /// endOfMibView (v2c).
    EndOfMibView,
}

impl Value<'_> {
    /// Whether this is one of the v2c exceptions.
    pub fn is_exception(&self) -> bool {
        matches!(
            self,
            Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView
        )
    }
}

/// Bytes of a length field for `n` content bytes.
fn len_len(n: usize) -> usize {
    match n {
        0..=0x7F => 1,
        0x80..=0xFF => 2,
        0x100..=0xFFFF => 3,
        _ => 4,
    }
}

/// Bytes of a whole TLV with `n` content bytes.
fn tlv_len(n: usize) -> usize {
    1 + len_len(n) + n
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    match n {
        0..=0x7F => out.push(n as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
        0x100..=0xFFFF => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        _ => out.extend_from_slice(&[0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]),
    }
}

/// Content bytes of a signed integer in its shortest two's-complement form.
fn int_bytes(v: i64) -> ([u8; 8], usize) {
    let b = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (hi, next) = (b[start], b[start + 1]);
        if (hi == 0 && next & 0x80 == 0) || (hi == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    (b, start)
}

/// Content bytes of an unsigned 32-bit value (a leading zero when the top bit is set).
fn uint_bytes(v: u32) -> ([u8; 8], usize) {
    int_bytes(i64::from(v))
}

fn subid_len(v: u32) -> usize {
    match v {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        0x20_0000..=0xFFF_FFFF => 4,
        _ => 5,
    }
}

/// Content bytes of an OID; OIDs with fewer than two sub-identifiers are sent as `0.0`.
fn oid_content_len(ids: &[u32]) -> usize {
    match ids {
        [a, b, rest @ ..] => {
            let first = u64::from(*a) * 40 + u64::from(*b);
            u32::try_from(first).map_or(5, subid_len)
                + rest.iter().map(|v| subid_len(*v)).sum::<usize>()
        }
        _ => 1,
    }
}

fn put_subid(out: &mut Vec<u8>, v: u64) {
    let mut shift = 63 - (v | 1).leading_zeros() as i32;
    shift -= shift % 7;
    while shift > 0 {
        out.push(0x80 | ((v >> shift) & 0x7F) as u8);
        shift -= 7;
    }
    out.push((v & 0x7F) as u8);
}

fn put_oid_content(out: &mut Vec<u8>, ids: &[u32]) {
    match ids {
        [a, b, rest @ ..] => {
            put_subid(out, u64::from(*a) * 40 + u64::from(*b));
            for v in rest {
                put_subid(out, u64::from(*v));
            }
        }
        _ => out.push(0),
    }
}

impl Value<'_> {
    fn content_len(&self) -> usize {
        match self {
            Value::Integer(v) => 8 - int_bytes(i64::from(*v)).1,
            Value::TimeTicks(v) | Value::Counter32(v) => 8 - uint_bytes(*v).1,
            Value::Str(s) => s.len(),
            Value::ObjectId(ids) => oid_content_len(ids),
            Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => 0,
        }
    }

    fn tag(&self) -> u8 {
        match self {
            Value::Integer(_) => tag::INTEGER,
            Value::Str(_) => tag::OCTET_STRING,
            Value::ObjectId(_) => tag::OID,
            Value::TimeTicks(_) => tag::TIMETICKS,
            Value::Counter32(_) => tag::COUNTER32,
            Value::NoSuchObject => tag::NO_SUCH_OBJECT,
            Value::NoSuchInstance => tag::NO_SUCH_INSTANCE,
            Value::EndOfMibView => tag::END_OF_MIB_VIEW,
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        put_len(out, self.content_len());
        match self {
            Value::Integer(v) => {
                let (b, s) = int_bytes(i64::from(*v));
                out.extend_from_slice(&b[s..]);
            }
            Value::TimeTicks(v) | Value::Counter32(v) => {
                let (b, s) = uint_bytes(*v);
                out.extend_from_slice(&b[s..]);
            }
            Value::Str(s) => out.extend_from_slice(s),
            Value::ObjectId(ids) => put_oid_content(out, ids),
            Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => {}
        }
    }
}

/// Headroom kept in front of the variable bindings for everything but the community:
/// message SEQUENCE (1+4), version (3), community tag and length (1+3), PDU (1+4),
/// request-id (2+4), error-status (3), error-index (2+4), bindings SEQUENCE (1+4).
const FIXED_HEADROOM: usize = 40;

/// Largest message a UDP datagram carries.
pub const MAX_DATAGRAM: usize = 65_507;

/// Builds one Response-PDU message in a reused buffer.
#[derive(Debug, Default)]
pub struct ResponseWriter {
    /// Headroom, then the encoded variable bindings.
    buf: Vec<u8>,
    /// Where the bindings start.
    start: usize,
    /// Bytes the header will take in front of the bindings, except the three
    /// lengths that depend on them (counted in [`ResponseWriter::message_len`]).
    fixed: usize,
}

impl ResponseWriter {
    /// Starts a response to `req`, forgetting the previous one.
    pub fn begin(&mut self, req: &Request<'_>) {
        self.start = FIXED_HEADROOM + req.community.len();
        self.buf.clear();
        self.buf.resize(self.start, 0);
        let (_, rid_skip) = int_bytes(i64::from(req.request_id));
        self.fixed = 3 // version
            + tlv_len(req.community.len())
            + 2 + (8 - rid_skip)
            + 3 // error-status
            + 2 + 4; // error-index (worst case)
    }

    /// Bytes of the bindings so far.
    pub fn bindings_len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Number of bytes the whole message takes with the bindings so far.
    pub fn message_len(&self) -> usize {
        let pdu = self.fixed + tlv_len(self.bindings_len());
        tlv_len(1 + len_len(pdu) + pdu)
    }

    /// Appends one binding.
    pub fn push(&mut self, name: &[u32], value: Value<'_>) {
        let oid = oid_content_len(name);
        let inner = tlv_len(oid) + tlv_len(value.content_len());
        self.buf.push(tag::SEQUENCE);
        put_len(&mut self.buf, inner);
        self.buf.push(tag::OID);
        put_len(&mut self.buf, oid);
        put_oid_content(&mut self.buf, name);
        value.put(&mut self.buf);
    }

    /// Appends already-encoded bindings (a v1 error response echoes the request's).
    pub fn push_raw(&mut self, encoded: &[u8]) {
        self.buf.extend_from_slice(encoded);
    }

    /// Drops the bindings after the first `len` bytes of them.
    pub fn truncate_bindings(&mut self, len: usize) {
        self.buf.truncate(self.start + len);
    }

    /// Writes the header in front of the bindings and returns the whole message.
    pub fn finish(&mut self, req: &Request<'_>, status: ErrorStatus, index: i32) -> &[u8] {
        let end = self.buf.len();
        let mut at = Prepend {
            buf: &mut self.buf[..self.start],
            pos: self.start,
        };
        at.header(tag::SEQUENCE, end - self.start);
        at.integer(i64::from(index));
        at.integer(status as i64);
        at.integer(i64::from(req.request_id));
        let pdu_len = end - at.pos;
        at.header(RESPONSE_PDU, pdu_len);
        at.bytes(req.community);
        at.header(tag::OCTET_STRING, req.community.len());
        at.integer(i64::from(req.version.field()));
        let msg_len = end - at.pos;
        at.header(tag::SEQUENCE, msg_len);
        let pos = at.pos;
        &self.buf[pos..]
    }
}

/// Writes TLVs backwards into the headroom in front of the bindings.
struct Prepend<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Prepend<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.pos -= b.len();
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
    }

    /// A tag and the length of the `n` content bytes that follow it.
    fn header(&mut self, t: u8, n: usize) {
        let be = (n as u32).to_be_bytes();
        match len_len(n) {
            1 => self.bytes(&[n as u8]),
            k => {
                self.bytes(&be[5 - k..]);
                self.bytes(&[0x80 | (k as u8 - 1)]);
            }
        }
        self.bytes(&[t]);
    }

    fn integer(&mut self, v: i64) {
        let (b, s) = int_bytes(v);
        self.bytes(&b[s..]);
        self.header(tag::INTEGER, 8 - s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(community: &[u8], oids: &[&str]) -> Vec<u8> {
        // Hand-built with the same rules; checked against snmp-parser in tests/snmp_codec.rs.
        let mut vbs = Vec::new();
        for o in oids {
            let ids = Oid::parse(o).unwrap();
            let mut vb = vec![tag::OID];
            put_len(&mut vb, oid_content_len(ids.as_slice()));
            put_oid_content(&mut vb, ids.as_slice());
            vb.extend_from_slice(&[tag::NULL, 0]);
            vbs.push(tag::SEQUENCE);
            put_len(&mut vbs, vb.len());
            vbs.extend_from_slice(&vb);
        }
        let mut pdu = vec![2, 1, 7, 2, 1, 0, 2, 1, 0, tag::SEQUENCE];
        put_len(&mut pdu, vbs.len());
        pdu.extend_from_slice(&vbs);
        let mut msg = vec![2, 1, 1, tag::OCTET_STRING];
        put_len(&mut msg, community.len());
        msg.extend_from_slice(community);
        msg.push(0xA0);
        put_len(&mut msg, pdu.len());
        msg.extend_from_slice(&pdu);
        let mut out = vec![tag::SEQUENCE];
        put_len(&mut out, msg.len());
        out.extend_from_slice(&msg);
        out
    }

    #[test]
    fn decodes_a_get_and_round_trips_large_sub_identifiers() {
        let m = get(
            b"public",
            &["1.3.6.1.2.1.1.3.0", "1.3.4294967295.268435456.127.128"],
        );
        let r = decode_request(&m).unwrap();
        assert_eq!(r.version, Version::V2c);
        assert_eq!(r.community, b"public");
        assert_eq!(r.pdu, PduType::Get);
        assert_eq!(r.request_id, 7);
        let names: Vec<String> = VarBinds::new(r.varbinds)
            .map(|o| o.unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            ["1.3.6.1.2.1.1.3.0", "1.3.4294967295.268435456.127.128"]
        );
    }

    #[test]
    fn rejects_garbage() {
        let m = get(b"public", &["1.3.6.1"]);
        for cut in 0..m.len() {
            assert!(decode_request(&m[..cut]).is_err(), "prefix of {cut} bytes");
        }
        let mut trailing = m.clone();
        trailing.push(0);
        assert_eq!(
            decode_request(&trailing).unwrap_err(),
            DecodeError::Trailing
        );
        assert_eq!(
            decode_oid(&[0x2B, 0x80, 0x01]).unwrap_err(),
            DecodeError::BadOid
        );
        assert_eq!(
            decode_oid(&[0x2B, 0x90, 0x80, 0x80, 0x80, 0x80, 0x00]).unwrap_err(),
            DecodeError::BadOid
        );
    }

    #[test]
    fn integers_use_the_shortest_form() {
        for (v, want) in [
            (0i64, &[0u8][..]),
            (127, &[0x7F]),
            (128, &[0x00, 0x80]),
            (-1, &[0xFF]),
            (-129, &[0xFF, 0x7F]),
            (i64::from(i32::MAX), &[0x7F, 0xFF, 0xFF, 0xFF]),
            (i64::from(u32::MAX), &[0x00, 0xFF, 0xFF, 0xFF, 0xFF]),
        ] {
            let (b, s) = int_bytes(v);
            assert_eq!(&b[s..], want, "{v}");
        }
    }

    #[test]
    fn response_header_lengths_are_exact() {
        let m = get(b"public", &["1.3.6.1.2.1.1.3.0"]);
        let r = decode_request(&m).unwrap();
        let mut w = ResponseWriter::default();
        w.begin(&r);
        let long = vec![b'x'; 300];
        w.push(&[1, 3, 6, 1, 2, 1, 1, 3, 0], Value::TimeTicks(u32::MAX));
        w.push(&[1, 3, 6, 1, 2, 1, 1, 1, 0], Value::Str(&long));
        let predicted = w.message_len();
        let out = w.finish(&r, ErrorStatus::NoError, 0).to_vec();
        assert!(out.len() <= predicted && predicted - out.len() <= 4);
        let mut rd = Reader { buf: &out };
        let msg = rd.expect(tag::SEQUENCE).unwrap();
        assert!(rd.is_empty());
        let mut m = Reader { buf: msg };
        assert_eq!(m.integer().unwrap(), 1);
        assert_eq!(m.expect(tag::OCTET_STRING).unwrap(), b"public");
        let pdu = m.expect(RESPONSE_PDU).unwrap();
        let mut p = Reader { buf: pdu };
        assert_eq!(p.integer().unwrap(), 7);
        let vbs: Vec<_> = {
            p.integer().unwrap();
            p.integer().unwrap();
            VarBinds::new(p.expect(tag::SEQUENCE).unwrap())
                .map(|o| o.unwrap().to_string())
                .collect()
        };
        assert_eq!(vbs, ["1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.1.0"]);
    }
}
