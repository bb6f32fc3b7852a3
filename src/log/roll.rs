//! One log file on disk: the live `<stem>.log`, rolled as chapter 12 says.
//!
//! `Type="time"` rolls at every multiple of `Unit` minutes of local wall-clock
//! time counted from midnight (so at least daily); `size` rolls before the file
//! would pass `Unit` MB; `both` does whichever comes first. The rolled file is
//! renamed `<stem>_YYYYMMDD_HHMM.log` (time: the start of the period it covers)
//! or `<stem>_YYYYMMDD_HHMMSS.log` (size, both: the time its first line was
//! written), gzipped to `.log.gz` when `Compression="ON"`, and only the newest
//! `Retention` rolled files are kept. Time is passed in (`now`), never read
//! here, so tests roll across boundaries without sleeping.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Local, NaiveDate, NaiveDateTime, TimeZone, Timelike};

use crate::config::log::Rolling;

/// Local wall-clock time, as the file names and the rolling boundaries use it.
pub type Time = DateTime<Local>;

/// The local time of `naive`, moving forward out of a DST gap.
fn local(naive: NaiveDateTime) -> Time {
    let mut n = naive;
    loop {
        if let Some(t) = Local.from_local_datetime(&n).earliest() {
            return t;
        }
        n += Duration::minutes(1);
    }
}

/// Start of the `unit`-minute period holding `t` (periods restart at local midnight).
pub fn period_start(t: Time, unit: u32) -> Time {
    let minutes = t.hour() * 60 + t.minute();
    let start = minutes / unit * unit;
    local(
        t.date_naive()
            .and_hms_opt(start / 60, start % 60, 0)
            .expect("minutes of a day"),
    )
}

/// The first boundary after `t`: the next multiple of `unit` minutes, or midnight.
pub fn next_boundary(t: Time, unit: u32) -> Time {
    let minutes = t.hour() * 60 + t.minute();
    let next = (minutes / unit + 1) * unit;
    let date: NaiveDate = t.date_naive();
    let naive = if next >= 1440 {
        date.succ_opt()
            .expect("a next day")
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
    } else {
        date.and_hms_opt(next / 60, next % 60, 0).expect("in a day")
    };
    local(naive)
}

/// The open live file.
struct Open {
    /// Buffered writer; flushed when the queue runs dry.
    out: BufWriter<File>,
    /// Bytes in the file, header included.
    size: u64,
    /// When the file's content started (the first line, or the file's mtime when reopened).
    started: Time,
    /// When a time-rolled file rolls next.
    next_roll: Option<Time>,
}

/// A rolled file that still needs compressing and pruning (done off the writer's path).
#[derive(Debug)]
pub struct Rolled {
    /// The renamed file.
    pub path: PathBuf,
    /// Compress it.
    pub compress: bool,
    /// Rolled files to keep.
    pub retention: u32,
    /// Directory and stem, to find the other rolled files.
    pub dir: PathBuf,
    /// File stem (`access`).
    pub stem: &'static str,
}

impl Rolled {
    /// gzips the file when asked, then deletes the oldest rolled files beyond `retention`.
    pub fn finish(self) -> io::Result<()> {
        if self.compress {
            gzip(&self.path)?;
        }
        prune(&self.dir, self.stem, self.retention)
    }
}

/// gzips `path` into `path.gz` (through a temporary name) and removes `path`.
fn gzip(path: &Path) -> io::Result<()> {
    let gz = path.with_extension("log.gz");
    let tmp = path.with_extension("log.gz.tmp");
    let mut input = File::open(path)?;
    let mut enc = flate2::write::GzEncoder::new(File::create(&tmp)?, flate2::Compression::fast());
    io::copy(&mut input, &mut enc)?;
    enc.finish()?.sync_all()?;
    fs::rename(&tmp, &gz)?;
    fs::remove_file(path)
}

/// When a rolled file of `stem` started, from its name
/// (`<stem>_<YYYYMMDD>_<HHMM[SS]>[_<n>].log[.gz]`), as a sortable key: the date, the
/// time padded to seconds, the collision number. `None` for any other name.
fn rolled_order(name: &str, stem: &str) -> Option<(u32, u32, u32)> {
    let rest = name
        .strip_prefix(stem)?
        .strip_prefix('_')
        .and_then(|r| r.strip_suffix(".gz").or(Some(r)))
        .and_then(|r| r.strip_suffix(".log"))?;
    let parts: Vec<&str> = rest.split('_').collect();
    let number = |p: &str| match p.bytes().all(|b| b.is_ascii_digit()) {
        true => p.parse::<u32>().ok(),
        false => None,
    };
    match parts[..] {
        [date, time] | [date, time, _] if date.len() == 8 && matches!(time.len(), 4 | 6) => {
            let n = parts.get(2).map_or(Some(0), |n| number(n))?;
            let time = number(time)? * if time.len() == 4 { 100 } else { 1 };
            Some((number(date)?, time, n))
        }
        _ => None,
    }
}

/// Deletes the oldest rolled files of `stem` in `dir` beyond `keep`, oldest by the
/// time in their names (compressing a file changes its mtime, never its name).
fn prune(dir: &Path, stem: &str, keep: u32) -> io::Result<()> {
    let mut rolled: Vec<((u32, u32, u32), String)> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some((rolled_order(&name, stem)?, name))
        })
        .collect();
    rolled.sort();
    let excess = rolled.len().saturating_sub(keep as usize);
    for (_, name) in &rolled[..excess] {
        fs::remove_file(dir.join(name))?;
    }
    Ok(())
}

/// One log file and its rolling state.
pub struct LogFile {
    /// The directory it lives in.
    dir: PathBuf,
    /// `access`, `info`...: the live file is `<stem>.log`.
    stem: &'static str,
    /// A line written at the top of every new file (`#Fields: ...`).
    header: Option<String>,
    /// Rolling settings.
    rolling: Rolling,
    /// The open file, if any.
    open: Option<Open>,
}

impl LogFile {
    /// A log file `<dir>/<stem>.log`; nothing is opened until the first line.
    pub fn new(dir: PathBuf, stem: &'static str, header: Option<String>, rolling: Rolling) -> Self {
        LogFile {
            dir,
            stem,
            header,
            rolling,
            open: None,
        }
    }

    /// The live file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.stem))
    }

    /// Whether this is the file for `dir`, `header` and `rolling` (else it is replaced).
    pub fn is_for(&self, dir: &Path, header: Option<&str>, rolling: &Rolling) -> bool {
        self.dir == dir && self.header.as_deref() == header && &self.rolling == rolling
    }

    /// Closes the file; the next line opens `<stem>.log` again (SIGUSR1, after logrotate).
    pub fn reopen(&mut self) -> io::Result<()> {
        match self.open.take() {
            Some(mut o) => o.out.flush(),
            None => Ok(()),
        }
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.open {
            Some(o) => o.out.flush(),
            None => Ok(()),
        }
    }

    fn open(&mut self, now: Time) -> io::Result<&mut Open> {
        if self.open.is_none() {
            fs::create_dir_all(&self.dir)?;
            let path = self.path();
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            let meta = file.metadata()?;
            // A file kept from before (a restart) started when it was last written, at the latest.
            let started = match meta.modified() {
                Ok(m) if meta.len() > 0 => Time::from(m).min(now),
                _ => now,
            };
            let mut o = Open {
                out: BufWriter::with_capacity(64 * 1024, file),
                size: meta.len(),
                started,
                next_roll: self.rolling.minutes.map(|u| next_boundary(started, u)),
            };
            if o.size == 0 {
                if let Some(h) = &self.header {
                    o.out.write_all(h.as_bytes())?;
                    o.out.write_all(b"\n")?;
                    o.size += h.len() as u64 + 1;
                }
            }
            self.open = Some(o);
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    /// Whether the open file holds lines (more than its header).
    fn has_lines(o: &Open, header_len: u64) -> bool {
        o.size > header_len
    }

    /// Bytes of the header line at the top of each file.
    fn header_len(header: &Option<String>) -> u64 {
        header.as_ref().map_or(0, |h| h.len() as u64 + 1)
    }

    /// Rolls the live file when its period ended at `now` (called once a second too,
    /// so an idle log still rolls on time). An empty file is not rolled: its period
    /// just moves on.
    pub fn tick(&mut self, now: Time) -> io::Result<Option<Rolled>> {
        let (Some(unit), Some(o)) = (self.rolling.minutes, self.open.as_mut()) else {
            return Ok(None);
        };
        if o.next_roll.is_none_or(|t| now < t) {
            return Ok(None);
        }
        if !Self::has_lines(o, Self::header_len(&self.header)) {
            o.started = now;
            o.next_roll = Some(next_boundary(now, unit));
            return Ok(None);
        }
        self.roll().map(Some)
    }

    /// Writes one line (without its newline), rolling first when it is due.
    pub fn write(&mut self, line: &str, now: Time) -> io::Result<Option<Rolled>> {
        let mut rolled = self.tick(now)?;
        let limit = self.rolling.bytes;
        let header_len = Self::header_len(&self.header);
        let o = self.open(now)?;
        let len = line.len() as u64 + 1;
        if limit.is_some_and(|max| o.size + len > max) && Self::has_lines(o, header_len) {
            rolled = Some(self.roll()?);
        }
        let o = self.open(now)?;
        // A line enters the buffer whole or not at all, so a disk that refuses the
        // flush (full) never leaves half a line to be joined to a later one.
        if o.out.capacity() - o.out.buffer().len() < len as usize {
            o.out.flush()?;
        }
        o.out.write_all(line.as_bytes())?;
        o.out.write_all(b"\n")?;
        o.size += len;
        Ok(rolled)
    }

    /// Closes the live file and renames it after the period (or moment) it started.
    fn roll(&mut self) -> io::Result<Rolled> {
        let Some(mut o) = self.open.take() else {
            return Err(io::Error::other("no open file to roll"));
        };
        o.out.flush()?;
        drop(o.out);
        let stamp = match (self.rolling.minutes, self.rolling.bytes) {
            (Some(unit), None) => period_start(o.started, unit)
                .format("%Y%m%d_%H%M")
                .to_string(),
            _ => o.started.format("%Y%m%d_%H%M%S").to_string(),
        };
        let mut target = self.dir.join(format!("{}_{stamp}.log", self.stem));
        let mut n = 0;
        while target.exists() || target.with_extension("log.gz").exists() {
            n += 1;
            target = self.dir.join(format!("{}_{stamp}_{n}.log", self.stem));
        }
        fs::rename(self.path(), &target)?;
        Ok(Rolled {
            path: target,
            compress: self.rolling.compress,
            retention: self.rolling.retention,
            dir: self.dir.clone(),
            stem: self.stem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32, s: u32) -> Time {
        local(
            NaiveDate::from_ymd_opt(2014, 7, 15)
                .unwrap()
                .and_hms_opt(h, m, s)
                .unwrap(),
        )
    }

    fn rolling(
        minutes: Option<u32>,
        bytes: Option<u64>,
        retention: u32,
        compress: bool,
    ) -> Rolling {
        Rolling {
            minutes,
            bytes,
            retention,
            compress,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn boundaries_are_multiples_of_the_unit_from_midnight() {
        // The guide: started at 2:18 with Unit 10, the log rolls at 2:20, 2:30...
        assert_eq!(next_boundary(at(2, 18, 5), 10), at(2, 20, 0));
        assert_eq!(next_boundary(at(2, 20, 0), 10), at(2, 30, 0));
        assert_eq!(period_start(at(2, 18, 5), 10), at(2, 10, 0));
        // Daily: midnight. A unit that does not divide the day still rolls at midnight.
        let midnight = local(
            NaiveDate::from_ymd_opt(2014, 7, 16)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        );
        assert_eq!(next_boundary(at(2, 18, 0), 1440), midnight);
        assert_eq!(next_boundary(at(23, 55, 0), 7), midnight);
    }

    #[test]
    fn time_rolls_at_the_boundary_and_names_the_period() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = LogFile::new(
            dir.path().into(),
            "access",
            Some("#Fields: a b".into()),
            rolling(Some(10), None, 10, false),
        );
        assert!(f.write("one", at(2, 18, 0)).unwrap().is_none());
        assert!(f.write("two", at(2, 19, 59)).unwrap().is_none());
        let rolled = f.write("three", at(2, 20, 0)).unwrap().unwrap();
        rolled.finish().unwrap();
        // An idle period is not rolled into an empty file; the next line's period is.
        f.flush().unwrap();
        assert!(f.tick(at(2, 30, 1)).unwrap().is_some());
        f.write("four", at(2, 41, 0)).unwrap();
        assert!(f.tick(at(2, 49, 0)).unwrap().is_none());
        assert!(f.tick(at(2, 50, 0)).unwrap().is_some());
        assert!(f.tick(at(3, 0, 0)).unwrap().is_none());
        assert_eq!(
            names(dir.path()),
            [
                "access_20140715_0210.log",
                "access_20140715_0220.log",
                "access_20140715_0240.log"
            ]
        );
        let first = fs::read_to_string(dir.path().join("access_20140715_0210.log")).unwrap();
        assert_eq!(first, "#Fields: a b\none\ntwo\n");
        let second = fs::read_to_string(dir.path().join("access_20140715_0220.log")).unwrap();
        assert_eq!(second, "#Fields: a b\nthree\n");
    }

    #[test]
    fn size_rolls_before_the_limit_keeps_retention_and_compresses() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = LogFile::new(
            dir.path().into(),
            "info",
            None,
            rolling(None, Some(20), 2, true),
        );
        let mut rolled = Vec::new();
        for i in 0..8u32 {
            // 9 bytes with the newline: two lines per file.
            if let Some(r) = f.write(&format!("line-{i:03}"), at(1, 0, i)).unwrap() {
                rolled.push(r.path.clone());
                r.finish().unwrap();
            }
        }
        f.flush().unwrap();
        assert_eq!(rolled.len(), 3);
        let left = names(dir.path());
        // Three files rolled, the oldest pruned: two kept, compressed, plus the live file.
        assert_eq!(
            left,
            [
                "info.log",
                "info_20140715_010002.log.gz",
                "info_20140715_010004.log.gz"
            ]
        );
        let mut text = String::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(File::open(dir.path().join(&left[1])).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "line-002\nline-003\n");
        assert_eq!(
            fs::read_to_string(dir.path().join("info.log")).unwrap(),
            "line-006\nline-007\n"
        );
    }

    #[test]
    fn both_rolls_on_whichever_comes_first_and_names_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = LogFile::new(
            dir.path().into(),
            "origin",
            None,
            rolling(Some(60), Some(10), 10, false),
        );
        for line in ["aaaaaaaa", "bbbbbbbb", "cccccccc"] {
            if let Some(r) = f.write(line, at(5, 0, 0)).unwrap() {
                r.finish().unwrap();
            }
        }
        // The hour boundary rolls too.
        f.tick(at(6, 0, 0)).unwrap().unwrap().finish().unwrap();
        assert_eq!(
            names(dir.path()),
            [
                "origin_20140715_050000.log",
                "origin_20140715_050000_1.log",
                "origin_20140715_050000_2.log"
            ]
        );
    }

    #[test]
    fn rolled_names_are_recognised_and_ordered_by_their_time() {
        let order = |n| rolled_order(n, "access");
        assert_eq!(order("access_20140715_0000.log"), Some((20140715, 0, 0)));
        assert_eq!(
            order("access_20140715_000000_2.log.gz"),
            Some((20140715, 0, 2))
        );
        assert_eq!(order("access.log"), None);
        assert_eq!(order("access_x_0000.log"), None);
        assert_eq!(order("access_20140715_00000.log"), None);
        assert_eq!(
            rolled_order("originerror_20140715_0000.log", "origin"),
            None
        );
        // Time rolls (HHMM) and size rolls (HHMMSS) compare by the time they name, and
        // collision numbers as numbers.
        assert!(order("access_20140715_0959.log") < order("access_20140715_100000.log.gz"));
        assert!(order("access_20140715_100000_2.log") < order("access_20140715_100000_10.log"));
        assert!(order("access_20141231_2359.log") < order("access_20150101_0000.log"));
    }
}
