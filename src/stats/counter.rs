//! The raw values recorded per vhost on the request path. Everything the
//! exports show (means, ratios, per-second rates) is derived from their sums
//! over a window.
//!
//! Layout: per side (client, then origin) the request count, inbound and
//! outbound bytes, request and response header and body bytes, then per status
//! class the responses, completed responses and time sums; then the result
//! codes and their bytes; the session gauges; origin connection events; and the
//! bytes of client exchanges over TLS (the guide's SSL traffic).

use super::contents::{Contents, SIZE_CLASSES};
use crate::cache::CacheResult;

/// Which side of the cache an exchange was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Client to kura.
    Client = 0,
    /// kura to origin.
    Origin = 1,
}

/// Response status classes the guide reports (`ResTotal`, `Res2xx` ... `Res5xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Every response.
    Total = 0,
    /// 2xx.
    C2xx = 1,
    /// 3xx.
    C3xx = 2,
    /// 4xx.
    C4xx = 3,
    /// 5xx.
    C5xx = 4,
}

impl Class {
    /// Every class, in the guide's order.
    pub const ALL: [Class; 5] = [
        Class::Total,
        Class::C2xx,
        Class::C3xx,
        Class::C4xx,
        Class::C5xx,
    ];

    /// The class of a status code (1xx counts only in `Total`).
    pub fn of(status: u16) -> Option<Class> {
        match status {
            200..=299 => Some(Class::C2xx),
            300..=399 => Some(Class::C3xx),
            400..=499 => Some(Class::C4xx),
            500..=599 => Some(Class::C5xx),
            _ => None,
        }
    }

    /// The guide's infix (`Total`, `2xx`, ...).
    pub fn as_str(self) -> &'static str {
        ["Total", "2xx", "3xx", "4xx", "5xx"][self as usize]
    }
}

/// Byte counts of one exchange's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Request header (start line and fields).
    ReqHeader = 0,
    /// Request body.
    ReqBody = 1,
    /// Response header.
    ResHeader = 2,
    /// Response body.
    ResBody = 3,
}

impl Part {
    /// Every part, in the order of [`crate::stats::Exchange::parts`].
    pub const ALL: [Part; 4] = [
        Part::ReqHeader,
        Part::ReqBody,
        Part::ResHeader,
        Part::ResBody,
    ];
}

/// Gauges: values sampled once a second rather than summed events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// Open client connections whose latest request was for the vhost.
    ClientSessions = 0,
    /// Client requests in progress.
    ClientActive = 1,
    /// Open connections to the vhost's origins.
    OriginSessions = 2,
    /// Origin requests in progress.
    OriginActive = 3,
    /// Open `<PortBypass>` relays.
    PortBypassSessions = 4,
}

impl Gauge {
    /// Every gauge.
    pub const ALL: [Gauge; 5] = [
        Gauge::ClientSessions,
        Gauge::ClientActive,
        Gauge::OriginSessions,
        Gauge::OriginActive,
        Gauge::PortBypassSessions,
    ];
}

/// Origin-side events that are not responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginEvent {
    /// No connection could be made (`ConnectTimeout` in the guide).
    ConnectFailure = 0,
    /// No response within `<ReceiveTimeout>`.
    ReceiveTimeout = 1,
    /// The connection closed without a response.
    Close = 2,
    /// A connection was made.
    Connect = 3,
    /// Microseconds spent connecting (with name resolution).
    ConnectMicros = 4,
}

/// Events of `<PortBypass>` relays (chapter 8, the guide's `PortBypass` statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortBypassEvent {
    /// Bytes received from clients.
    ClientIn = 0,
    /// Bytes sent to clients.
    ClientOut = 1,
    /// Bytes received from the origin.
    OriginIn = 2,
    /// Bytes sent to the origin.
    OriginOut = 3,
    /// Relays established (`Hit.Established`).
    Established = 4,
    /// Relays the client closed first (`Hit.ClientClosed`).
    ClientClosed = 5,
    /// Relays the origin closed first (`Hit.OriginClosed`).
    OriginClosed = 6,
    /// Origin connections that failed or timed out (`Hit.OriginCT`).
    ConnectFailure = 7,
}

impl PortBypassEvent {
    /// Every event.
    pub const ALL: [PortBypassEvent; 8] = [
        PortBypassEvent::ClientIn,
        PortBypassEvent::ClientOut,
        PortBypassEvent::OriginIn,
        PortBypassEvent::OriginOut,
        PortBypassEvent::Established,
        PortBypassEvent::ClientClosed,
        PortBypassEvent::OriginClosed,
        PortBypassEvent::ConnectFailure,
    ];
}

/// File I/O of a vhost's cached objects on the disks (`VirtualHost.Disk`), added
/// once a second from the store's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileIo {
    /// Object files written (`Create`).
    Create = 0,
    /// Object files opened to be read (`Open`).
    Open = 1,
    /// Object files deleted (`Delete`).
    Delete = 2,
    /// Reads of object files (`ReadCount`).
    ReadCount = 3,
    /// Bytes read (`ReadSize`).
    ReadSize = 4,
    /// Writes of object files: new files and rewritten heads (`WriteCount`).
    WriteCount = 5,
    /// Bytes written (`WriteSize`).
    WriteSize = 6,
}

impl FileIo {
    /// Every value, in the guide's order.
    pub const ALL: [FileIo; 7] = [
        FileIo::Create,
        FileIo::Open,
        FileIo::Delete,
        FileIo::ReadCount,
        FileIo::ReadSize,
        FileIo::WriteCount,
        FileIo::WriteSize,
    ];

    /// The guide's member name.
    pub fn as_str(self) -> &'static str {
        [
            "Create",
            "Open",
            "Delete",
            "ReadCount",
            "ReadSize",
            "WriteCount",
            "WriteSize",
        ][self as usize]
    }
}

/// What happened to a vhost's cached objects (`VirtualHost.CacheFileEvent`),
/// added once a second from the store's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectEvent {
    /// Stored from an origin response (`Create`).
    Create = 0,
    /// The body swapped out of the memory tier to make room; the object stays
    /// on its disk (`Swap`).
    Swap = 1,
    /// Evicted (quota, memory budget, a disk taken out, a torn body) or cleaned
    /// up (`Erase`).
    Erase = 2,
    /// Purged, hard-purged or cleared (`Purge`).
    Purge = 3,
    /// Expired by `expire` or `expireafter` (`Expire`).
    Expire = 4,
}

impl ObjectEvent {
    /// Every event, in the guide's order.
    pub const ALL: [ObjectEvent; 5] = [
        ObjectEvent::Create,
        ObjectEvent::Swap,
        ObjectEvent::Erase,
        ObjectEvent::Purge,
        ObjectEvent::Expire,
    ];

    /// The guide's attribute name.
    pub fn as_str(self) -> &'static str {
        ["Create", "Swap", "Erase", "Purge", "Expire"][self as usize]
    }
}

/// What the store holds for a vhost: levels set once a second from the store's
/// counts (the daemon's `publish_contents`) and sampled like the gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Objects (`FileTotal`).
    Files = 0,
    /// Their body bytes (`Disk.TotalSize`).
    Bytes = 1,
    /// Body bytes held in memory (`Memory`).
    Memory = 2,
    /// Object files open for reading (`FileOpened`).
    Opened = 3,
    /// Objects and fills in progress (`FileInstance`).
    Instances = 4,
}

impl Stored {
    /// Every level, before the size classes.
    pub const ALL: [Stored; 5] = [
        Stored::Files,
        Stored::Bytes,
        Stored::Memory,
        Stored::Opened,
        Stored::Instances,
    ];
}

/// Values per status class: responses, completed responses, head-time and completion-time sums.
const PER_CLASS: usize = 4;
/// Values before the classes: requests, inbound, outbound, and the four parts.
const SIDE_HEAD: usize = 7;
const PER_SIDE: usize = SIDE_HEAD + 5 * PER_CLASS;
const RESULTS: usize = 2 * PER_SIDE;
const RESULT_BYTES: usize = RESULTS + CacheResult::ALL.len();
const GAUGES: usize = RESULT_BYTES + CacheResult::ALL.len();
const ORIGIN_EVENTS: usize = GAUGES + Gauge::ALL.len();

/// Client requests bypassed to the origin (chapter 8: `bypass.txt`, the GET/POST
/// defaults, no-cache requests; methods the cache never handles too).
pub const BYPASSED: usize = ORIGIN_EVENTS + 5;
const SSL: usize = BYPASSED + 1;
const PORT_BYPASS: usize = SSL + 2;
const FILE_IO: usize = PORT_BYPASS + PortBypassEvent::ALL.len();
const OBJECT_EVENTS: usize = FILE_IO + FileIo::ALL.len();
/// Body bytes swapped out of the memory tier (`SecuredMemory`).
pub const SECURED_MEMORY: usize = OBJECT_EVENTS + ObjectEvent::ALL.len();
const STORED: usize = SECURED_MEMORY + 1;

/// Store levels: [`Stored::ALL`], then the size classes.
pub const STORED_LEVELS: usize = Stored::ALL.len() + SIZE_CLASSES;

/// Number of raw values per vhost.
pub const N: usize = STORED + STORED_LEVELS;

/// Requests sent on a side.
pub const fn requests(side: Side) -> usize {
    side as usize * PER_SIDE
}

/// Bytes received on a side (from the client, or from the origin).
pub const fn inbound(side: Side) -> usize {
    side as usize * PER_SIDE + 1
}

/// Bytes sent on a side (to the client, or to the origin).
pub const fn outbound(side: Side) -> usize {
    side as usize * PER_SIDE + 2
}

/// Bytes of one message part on a side.
pub const fn part(side: Side, p: Part) -> usize {
    side as usize * PER_SIDE + 3 + p as usize
}

/// Responses of a class.
pub const fn responses(side: Side, class: Class) -> usize {
    side as usize * PER_SIDE + SIDE_HEAD + class as usize * PER_CLASS
}

/// Responses of a class whose body was sent (or received) to its end.
pub const fn completed(side: Side, class: Class) -> usize {
    responses(side, class) + 1
}

/// Sum of microseconds until the response head, for a class.
pub const fn time_res(side: Side, class: Class) -> usize {
    responses(side, class) + 2
}

/// Sum of microseconds until the response completed, for a class.
pub const fn time_complete(side: Side, class: Class) -> usize {
    responses(side, class) + 3
}

/// Client requests with a result code.
pub fn result(r: CacheResult) -> usize {
    RESULTS + r as usize
}

/// Bytes sent to clients for requests with a result code.
pub fn result_bytes(r: CacheResult) -> usize {
    RESULT_BYTES + r as usize
}

/// Where a gauge's per-second samples are summed in a window.
pub const fn gauge(g: Gauge) -> usize {
    GAUGES + g as usize
}

/// An origin event count (or the connect-time sum).
pub const fn origin_event(e: OriginEvent) -> usize {
    ORIGIN_EVENTS + e as usize
}

/// Bytes received from clients over TLS (request heads and bodies).
pub const fn ssl_inbound() -> usize {
    SSL
}

/// Bytes sent to clients over TLS (response heads and bodies).
pub const fn ssl_outbound() -> usize {
    SSL + 1
}

/// A port bypass event count (or byte count).
pub const fn port_bypass(e: PortBypassEvent) -> usize {
    PORT_BYPASS + e as usize
}

/// A file I/O count (or byte count) of the vhost's objects.
pub const fn file_io(e: FileIo) -> usize {
    FILE_IO + e as usize
}

/// A count of an event of the vhost's cached objects.
pub const fn object_event(e: ObjectEvent) -> usize {
    OBJECT_EVENTS + e as usize
}

/// Where the per-second samples of store level `i` (of [`STORED_LEVELS`]) are summed
/// in a window.
pub const fn stored_level(i: usize) -> usize {
    STORED + i
}

/// A store level's place.
pub const fn stored(l: Stored) -> usize {
    stored_level(l as usize)
}

/// The place of the objects in size class `i` (see [`Contents::by_size`]).
pub const fn stored_class(i: usize) -> usize {
    stored_level(Stored::ALL.len() + i)
}

/// The store levels of `c`, in [`stored_level`] order.
pub fn stored_levels(c: &Contents) -> [u64; STORED_LEVELS] {
    let mut levels = [0; STORED_LEVELS];
    for l in Stored::ALL {
        levels[l as usize] = match l {
            Stored::Files => c.files,
            Stored::Bytes => c.bytes,
            Stored::Memory => c.memory,
            Stored::Opened => c.opened,
            Stored::Instances => c.files + c.fills,
        };
    }
    levels[Stored::ALL.len()..].copy_from_slice(&c.by_size);
    levels
}

/// Every value sampled once a second rather than counted: the gauges and the store levels.
pub fn sampled() -> impl Iterator<Item = usize> {
    Gauge::ALL.into_iter().map(gauge).chain(STORED..N)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_has_one_index_and_the_layout_is_dense() {
        let mut all = Vec::new();
        for side in [Side::Client, Side::Origin] {
            all.extend([requests(side), inbound(side), outbound(side)]);
            all.extend(Part::ALL.map(|p| part(side, p)));
            for class in Class::ALL {
                all.extend([
                    responses(side, class),
                    completed(side, class),
                    time_res(side, class),
                    time_complete(side, class),
                ]);
            }
        }
        all.extend(CacheResult::ALL.map(result));
        all.extend(CacheResult::ALL.map(result_bytes));
        all.extend(Gauge::ALL.map(gauge));
        all.extend(
            [
                OriginEvent::ConnectFailure,
                OriginEvent::ReceiveTimeout,
                OriginEvent::Close,
                OriginEvent::Connect,
                OriginEvent::ConnectMicros,
            ]
            .map(origin_event),
        );
        all.push(BYPASSED);
        all.extend([ssl_inbound(), ssl_outbound()]);
        all.extend(PortBypassEvent::ALL.map(port_bypass));
        all.extend(FileIo::ALL.map(file_io));
        all.extend(ObjectEvent::ALL.map(object_event));
        all.push(SECURED_MEMORY);
        all.extend(Stored::ALL.map(stored));
        all.extend((0..SIZE_CLASSES).map(stored_class));
        all.sort();
        assert_eq!(
            all,
            (0..N).collect::<Vec<_>>(),
            "each of the N values is addressed exactly once"
        );
    }
}
