//! The durable write-ahead log of the Raft store.
//!
//! The raft-rs driver keeps recent entries in `MemStorage` and makes them
//! durable here. Each Ready cycle buffers its entries and hard state with
//! [`Wal::append_entries`] and [`Wal::set_hard_state`], then one
//! [`Wal::sync`] writes the whole batch with one `write` and one `fdatasync`.
//! Once `sync` returns `Ok` the batch survives `kill -9` and power loss.
//! Dropping a [`Wal`] writes nothing: unsynced appends are lost, as in a crash.
//!
//! # Files
//!
//! ```text
//! DIR/wal/LOCK                                 flock held while a Wal is open
//! DIR/wal/{seq:016x}-{first_index:016x}.wal    segments, seq counting up by one
//! ```
//!
//! `first_index` is the index of the first entry written to the segment (or
//! the log's next index when the segment started without entries); it only
//! names the file, recovery relies on the records. The first `sync` after
//! the current segment reached [`WalOptions::segment_size`] starts a new one,
//! so a segment overruns that size by at most one batch. Nothing is
//! preallocated.
//!
//! # Records
//!
//! ```text
//! offset 0  u32 LE  crc   CRC-32 (IEEE) of bytes 4 .. 9+len: length, type, payload
//! offset 4  u32 LE  len   payload length
//! offset 8  u8      type
//! offset 9  [len]   payload
//! ```
//!
//! | type | record    | payload                                                     |
//! |------|-----------|-------------------------------------------------------------|
//! | 1    | Header    | `wasmkwal`, u32 LE version (1), u64 LE seq, u64 LE first_index |
//! | 2    | Entry     | prost `eraftpb::Entry`                                      |
//! | 3    | HardState | prost `eraftpb::HardState`                                  |
//! | 4    | ConfState | prost `eraftpb::ConfState`                                  |
//! | 5    | Compact   | u64 LE index, u64 LE term: entries <= index are in a snapshot, later ones stay |
//! | 6    | Install   | u64 LE index, u64 LE term: a snapshot from the leader replaced the whole log |
//!
//! Every segment starts with a Header followed by the state that was durable
//! when it was created (Compact at the snapshot point, HardState, ConfState),
//! so the segments left after compaction deleted older ones still replay to
//! the right state. A batch writes its entries first and its hard and conf
//! state last: a torn batch never leaves a commit index past the surviving
//! entries. Compaction rewrites the hard and conf state into the current
//! segment before it deletes anything.
//!
//! # Recovery
//!
//! Records replay in order. An Entry whose index is <= the last index first
//! truncates the log before it (raft-rs overwrites conflicting uncommitted
//! suffixes); Compact drops the entries up to its index; Install drops all;
//! for HardState and ConfState the latest wins. The recovered entries must
//! follow the snapshot point without a gap.
//!
//! Where no record can be read at offset X of a segment:
//! - in the newest segment, when the rest of the file is zeros or holds no
//!   valid record at any offset: a torn (or zero-filled) tail left by a
//!   crash during a write that was never acknowledged; the file is cut at X;
//! - otherwise (a valid record follows X, or an older segment, which is
//!   never written after its successor exists): corruption, reported with
//!   the file and offset; the store refuses to start rather than lose data.
//!
//! Within the last unacknowledged batch, a power loss that persists later
//! pages but not earlier ones would also be reported as corruption: a false
//! alarm that stops the server, never silent loss.
//!
//! After a failed write or `fdatasync` the page cache no longer tells what
//! is on disk, so the [`Wal`] refuses further use ([`WalError::Poisoned`]);
//! the server must restart and recover from the files.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use raft::eraftpb::{ConfState, Entry, HardState};

/// Segment size after which a new segment is started (64 MiB).
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;

const MAGIC: &[u8; 8] = b"wasmkwal";
const VERSION: u32 = 1;
/// crc, len, type.
const FRAME_HEADER: usize = 9;
const HEADER_PAYLOAD: usize = 8 + 4 + 8 + 8;
const POINT_PAYLOAD: usize = 16;
const LOCK_FILE: &str = "LOCK";
const LOCK_ATTEMPTS: u32 = 50;
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);
/// A batch buffer grown beyond this is released after its sync instead of
/// being kept for the next batch.
const KEEP_BUFFER: usize = 4 * 1024 * 1024;

/// Tunables of a [`Wal`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Start a new segment once the current one holds at least this many bytes.
    pub segment_size: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// Errors of the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another process (or another `Wal` in this one) holds the log.
    #[error("WAL directory {} is in use by another process", path.display())]
    Locked { path: PathBuf },
    /// Bytes that are neither valid records nor a torn tail.
    #[error("corrupt WAL segment {} at offset {offset}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The set of segments does not add up to a log (missing segment or entries).
    #[error("WAL in {} is inconsistent: {reason}", dir.display())]
    Inconsistent { dir: PathBuf, reason: String },
    /// `append_entries` was given entries that do not fit the log.
    #[error("cannot append entry {index}: {reason}")]
    InvalidAppend { index: u64, reason: String },
    /// `compact` or `apply_snapshot` was given a point that does not fit the log.
    #[error("cannot move the snapshot point to index {index} term {term}: {reason}")]
    InvalidSnapshot {
        index: u64,
        term: u64,
        reason: String,
    },
    /// A record payload does not fit the 32-bit length field.
    #[error("a WAL record of {len} bytes exceeds the 4 GiB record limit")]
    RecordTooLarge { len: usize },
    /// prost refused to encode a message.
    #[error("encoding a {what} record: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: prost::EncodeError,
    },
    /// An earlier write or sync failed; nothing more is written.
    #[error(
        "WAL in {} failed an earlier write or sync; restart to recover what is durable",
        dir.display()
    )]
    Poisoned { dir: PathBuf },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What survived on disk, as [`Wal::open`] found it.
///
/// To rebuild `MemStorage`: load the newest snapshot file (its index must not
/// be below `snapshot_index`, else entries were lost), apply it, append the
/// entries whose index is above the snapshot's, then set the hard and conf
/// state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovered {
    /// The latest hard state written (default when none was).
    pub hard_state: HardState,
    /// The latest conf state written, if any.
    pub conf_state: Option<ConfState>,
    /// Entries up to here are covered by a snapshot (0: none).
    pub snapshot_index: u64,
    /// Term of the entry at `snapshot_index`.
    pub snapshot_term: u64,
    /// The log after the snapshot point: indexes `snapshot_index + 1 ..`, contiguous.
    pub entries: Vec<Entry>,
    /// True when the directory held no log and a new one was created.
    pub fresh: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Header = 1,
    Entry = 2,
    HardState = 3,
    ConfState = 4,
    Compact = 5,
    Install = 6,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Header,
            2 => Kind::Entry,
            3 => Kind::HardState,
            4 => Kind::ConfState,
            5 => Kind::Compact,
            6 => Kind::Install,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Header => "header",
            Kind::Entry => "entry",
            Kind::HardState => "hard state",
            Kind::ConfState => "conf state",
            Kind::Compact => "compact",
            Kind::Install => "install",
        }
    }
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq)]
enum Record {
    Header { seq: u64 },
    Entry(Entry),
    HardState(HardState),
    ConfState(ConfState),
    Compact { index: u64, term: u64 },
    Install { index: u64, term: u64 },
}

// ---------------------------------------------------------------------------
// Encoding (pure).

/// Appends one framed record whose payload `body` writes.
fn put_frame(
    buf: &mut Vec<u8>,
    kind: Kind,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), prost::EncodeError>,
) -> Result<(), WalError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER]);
    if let Err(source) = body(buf) {
        buf.truncate(start);
        return Err(WalError::Encode {
            what: kind.name(),
            source,
        });
    }
    let len = buf.len() - start - FRAME_HEADER;
    let Ok(len32) = u32::try_from(len) else {
        buf.truncate(start);
        return Err(WalError::RecordTooLarge { len });
    };
    buf[start + 4..start + 8].copy_from_slice(&len32.to_le_bytes());
    buf[start + 8] = kind as u8;
    let crc = crc32fast::hash(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn put_message(buf: &mut Vec<u8>, kind: Kind, msg: &impl Message) -> Result<(), WalError> {
    put_frame(buf, kind, |b| {
        b.reserve(msg.encoded_len());
        msg.encode(b)
    })
}

fn put_point(buf: &mut Vec<u8>, kind: Kind, index: u64, term: u64) -> Result<(), WalError> {
    put_frame(buf, kind, |b| {
        b.extend_from_slice(&index.to_le_bytes());
        b.extend_from_slice(&term.to_le_bytes());
        Ok(())
    })
}

fn put_header(buf: &mut Vec<u8>, seq: u64, first_index: u64) -> Result<(), WalError> {
    put_frame(buf, Kind::Header, |b| {
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(&first_index.to_le_bytes());
        Ok(())
    })
}

/// The records that open a segment: header, then the durable state.
fn segment_prologue(
    seq: u64,
    first_index: u64,
    snapshot: (u64, u64),
    hard_state: &HardState,
    conf_state: Option<&ConfState>,
) -> Result<Vec<u8>, WalError> {
    let mut buf = Vec::with_capacity(128);
    put_header(&mut buf, seq, first_index)?;
    put_point(&mut buf, Kind::Compact, snapshot.0, snapshot.1)?;
    put_message(&mut buf, Kind::HardState, hard_state)?;
    if let Some(cs) = conf_state {
        put_message(&mut buf, Kind::ConfState, cs)?;
    }
    Ok(buf)
}

// ---------------------------------------------------------------------------
// Decoding (pure).

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Reads the frame at `at`: its kind, payload and the offset after it.
fn read_frame(bytes: &[u8], at: usize) -> Result<(Kind, &[u8], usize), &'static str> {
    let rest = bytes.get(at..).unwrap_or_default();
    if rest.len() < FRAME_HEADER {
        return Err("truncated record header");
    }
    let kind = Kind::from_byte(rest[8]).ok_or("unknown record type")?;
    let len = le_u32(&rest[4..8]) as usize;
    let end = FRAME_HEADER
        .checked_add(len)
        .ok_or("record length overflows")?;
    if rest.len() < end {
        return Err("record runs past the end of the file");
    }
    if crc32fast::hash(&rest[4..end]) != le_u32(&rest[..4]) {
        return Err("checksum mismatch");
    }
    Ok((kind, &rest[FRAME_HEADER..end], at + end))
}

fn decode_payload(kind: Kind, p: &[u8]) -> Result<Record, String> {
    let bad = |e: prost::DecodeError| format!("undecodable {} record: {e}", kind.name());
    match kind {
        Kind::Header => {
            if p.len() != HEADER_PAYLOAD || &p[..8] != MAGIC {
                return Err("not a wasmk WAL segment header".to_string());
            }
            let version = le_u32(&p[8..12]);
            if version != VERSION {
                return Err(format!("unsupported WAL version {version}"));
            }
            Ok(Record::Header {
                seq: le_u64(&p[12..20]),
            })
        }
        Kind::Entry => Entry::decode(p).map(Record::Entry).map_err(bad),
        Kind::HardState => HardState::decode(p).map(Record::HardState).map_err(bad),
        Kind::ConfState => ConfState::decode(p).map(Record::ConfState).map_err(bad),
        Kind::Compact | Kind::Install => {
            if p.len() != POINT_PAYLOAD {
                return Err(format!("{} record of {} bytes", kind.name(), p.len()));
            }
            let (index, term) = (le_u64(&p[..8]), le_u64(&p[8..16]));
            Ok(if kind == Kind::Compact {
                Record::Compact { index, term }
            } else {
                Record::Install { index, term }
            })
        }
    }
}

/// How the readable part of a segment ended.
#[derive(Clone, Debug, PartialEq)]
enum Stop {
    /// Every byte belongs to a valid record.
    Clean,
    /// Only zeros after the last valid record.
    Zeros,
    /// An unreadable record with no valid record after it.
    Torn(&'static str),
    /// Damage that a crash during a write cannot explain.
    Corrupt { offset: usize, reason: String },
}

/// A segment's valid records (with their offsets) and where they end.
#[derive(Debug)]
struct Scan {
    records: Vec<(usize, Record)>,
    end: usize,
    stop: Stop,
}

fn scan_segment(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match read_frame(bytes, at) {
            Ok((kind, payload, next)) => match decode_payload(kind, payload) {
                Ok(record) => {
                    records.push((at, record));
                    at = next;
                }
                // The checksum held, so a crash cannot have produced this.
                Err(reason) => {
                    return Scan {
                        records,
                        end: at,
                        stop: Stop::Corrupt { offset: at, reason },
                    };
                }
            },
            Err(reason) => {
                let stop = classify_tail(bytes, at, reason);
                return Scan {
                    records,
                    end: at,
                    stop,
                };
            }
        }
    }
    Scan {
        records,
        end: at,
        stop: Stop::Clean,
    }
}

/// Decides whether the unreadable bytes from `at` on can be a torn write.
fn classify_tail(bytes: &[u8], at: usize, reason: &'static str) -> Stop {
    let rest = bytes.get(at..).unwrap_or_default();
    if rest.iter().all(|&b| b == 0) {
        return Stop::Zeros;
    }
    // A torn write leaves at most the unacknowledged batch; a valid record
    // after the damage means acknowledged data was hit.
    if let Some(next) = (at + 1..bytes.len()).find(|&y| read_frame(bytes, y).is_ok()) {
        return Stop::Corrupt {
            offset: at,
            reason: format!("{reason}, yet a valid record follows at offset {next}"),
        };
    }
    Stop::Torn(reason)
}

// ---------------------------------------------------------------------------
// Replay (pure).

/// The log as the records replayed so far leave it.
#[derive(Debug)]
struct Replay {
    snapshot_index: u64,
    snapshot_term: u64,
    /// Contiguous; the first may be above `snapshot_index + 1` only while the
    /// entries between lived in segments that compaction deleted.
    entries: Vec<Entry>,
    hard_state: HardState,
    conf_state: Option<ConfState>,
    /// True until the first entry or Install: replay may start in the middle
    /// of the log when older segments were deleted.
    may_have_hole: bool,
}

impl Replay {
    fn new() -> Self {
        Replay {
            snapshot_index: 0,
            snapshot_term: 0,
            entries: Vec::new(),
            hard_state: HardState::default(),
            conf_state: None,
            may_have_hole: true,
        }
    }

    fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_index, |e| e.index)
    }

    fn apply(&mut self, record: Record) -> Result<(), String> {
        match record {
            Record::Header { .. } => Err("segment header in the middle of a segment".to_string()),
            Record::Entry(e) => self.entry(e),
            Record::HardState(hs) => {
                self.hard_state = hs;
                Ok(())
            }
            Record::ConfState(cs) => {
                self.conf_state = Some(cs);
                Ok(())
            }
            Record::Compact { index, term } => self.compact(index, term),
            Record::Install { index, term } => self.install(index, term),
        }
    }

    fn entry(&mut self, e: Entry) -> Result<(), String> {
        if e.index <= self.snapshot_index {
            return Err(format!(
                "entry {} is at or below the snapshot point {}",
                e.index, self.snapshot_index
            ));
        }
        match (self.entries.first(), self.entries.last()) {
            (Some(first), Some(last)) => {
                if e.index > last.index.saturating_add(1) {
                    return Err(format!(
                        "entry {} leaves a gap after entry {}",
                        e.index, last.index
                    ));
                }
                if e.index < first.index {
                    self.entries.clear();
                } else {
                    self.entries.truncate((e.index - first.index) as usize);
                }
            }
            _ => {
                if e.index != self.snapshot_index.saturating_add(1) && !self.may_have_hole {
                    return Err(format!(
                        "entry {} does not follow the snapshot point {}",
                        e.index, self.snapshot_index
                    ));
                }
            }
        }
        self.may_have_hole = false;
        self.entries.push(e);
        Ok(())
    }

    fn compact(&mut self, index: u64, term: u64) -> Result<(), String> {
        if index < self.snapshot_index
            || (index == self.snapshot_index && term != self.snapshot_term)
        {
            return Err(format!(
                "compaction to index {index} term {term} conflicts with the snapshot point {} term {}",
                self.snapshot_index, self.snapshot_term
            ));
        }
        if index == self.snapshot_index {
            return Ok(());
        }
        let inside_hole = self.entries.is_empty() && self.may_have_hole;
        if index > self.last_index() && !inside_hole {
            return Err(format!(
                "compaction to index {index} is past the last entry {}",
                self.last_index()
            ));
        }
        let keep_from = self.entries.partition_point(|e| e.index <= index);
        if let Some(covered) = keep_from.checked_sub(1).and_then(|i| self.entries.get(i))
            && covered.index == index
            && covered.term != term
        {
            return Err(format!(
                "compaction to index {index} term {term} but the entry has term {}",
                covered.term
            ));
        }
        self.entries.drain(..keep_from);
        self.snapshot_index = index;
        self.snapshot_term = term;
        Ok(())
    }

    fn install(&mut self, index: u64, term: u64) -> Result<(), String> {
        if index <= self.snapshot_index {
            return Err(format!(
                "snapshot at index {index} is not after the snapshot point {}",
                self.snapshot_index
            ));
        }
        self.entries.clear();
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.may_have_hole = false;
        Ok(())
    }

    fn finish(self) -> Result<Recovered, String> {
        if let Some(first) = self.entries.first()
            && first.index != self.snapshot_index.saturating_add(1)
        {
            return Err(format!(
                "entries {}..{} are missing: the snapshot point is {} but the log resumes at {}",
                self.snapshot_index + 1,
                first.index - 1,
                self.snapshot_index,
                first.index
            ));
        }
        Ok(Recovered {
            hard_state: self.hard_state,
            conf_state: self.conf_state,
            snapshot_index: self.snapshot_index,
            snapshot_term: self.snapshot_term,
            entries: self.entries,
            fresh: false,
        })
    }
}

// ---------------------------------------------------------------------------
// Files (IO).

/// One segment file of the log.
#[derive(Clone, Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// Highest entry index ever written to it; the segment can go once the
    /// snapshot point reaches this.
    max_index: u64,
}

fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

/// `(seq, first_index)` from a segment file name.
fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let (seq, first) = name.strip_suffix(".wal")?.split_once('-')?;
    if seq.len() != 16 || first.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(first, 16).ok()?,
    ))
}

fn sync_dir(path: &Path) -> Result<(), WalError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", path))
}

fn lock_dir(wal_dir: &Path) -> Result<File, WalError> {
    let path = wal_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("open lock file", &path))?;
    // A child that this process forks shares the lock until it execs, so a
    // log closed a moment ago can still look locked: retry briefly.
    for _ in 0..LOCK_ATTEMPTS {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) => std::thread::sleep(LOCK_RETRY),
            Err(TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
        }
    }
    Err(WalError::Locked {
        path: wal_dir.to_path_buf(),
    })
}

/// The segment files in `wal_dir`, by seq, checked to count up by one.
fn list_segments(wal_dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut found = Vec::new();
    for dirent in fs::read_dir(wal_dir).map_err(io_err("read directory", wal_dir))? {
        let dirent = dirent.map_err(io_err("read directory", wal_dir))?;
        let name = dirent.file_name();
        let Some(name) = name.to_str() else { continue };
        match parse_segment_name(name) {
            Some((seq, _)) => found.push((seq, dirent.path())),
            None if name == LOCK_FILE => {}
            None => {
                tracing::warn!(file = %dirent.path().display(), "ignoring a file that is not a WAL segment")
            }
        }
    }
    found.sort();
    for pair in found.windows(2) {
        if pair[0].0.checked_add(1) != Some(pair[1].0) {
            return Err(WalError::Inconsistent {
                dir: wal_dir.to_path_buf(),
                reason: format!(
                    "segment {} is followed by {}: segments are missing or duplicated",
                    pair[0].1.display(),
                    pair[1].1.display()
                ),
            });
        }
    }
    Ok(found)
}

/// What to do to the newest segment once recovery has succeeded.
enum TailFix {
    None,
    Truncate(u64),
    /// It holds not even a whole header: it was created by a batch that never
    /// completed.
    Remove,
}

/// A write-ahead log open for appending. See the module docs for the format.
pub struct Wal {
    /// `DIR/wal`.
    dir: PathBuf,
    opts: WalOptions,
    /// Holds the flock for as long as the log is open.
    _lock: File,
    /// Oldest first; the last is the one being written.
    segments: Vec<Segment>,
    /// The current segment, opened for appending.
    file: File,
    /// Bytes in the current segment.
    file_len: u64,
    /// (index, term) covered by a snapshot, including buffered changes.
    snapshot: (u64, u64),
    /// The snapshot point as last synced; new segments start from it.
    durable_snapshot: (u64, u64),
    /// Terms of entries `snapshot.0 + 1 ..= last_index()`, buffered ones included.
    terms: Vec<u64>,
    /// Hard and conf state as last synced.
    hard_state: HardState,
    conf_state: Option<ConfState>,
    /// Framed records waiting for the next `sync`.
    pending: Vec<u8>,
    pending_first_index: Option<u64>,
    pending_max_index: u64,
    pending_hard_state: Option<HardState>,
    pending_conf_state: Option<ConfState>,
    /// Write the hard and conf state with the next batch even if unchanged,
    /// so deleting older segments cannot lose them.
    rewrite_state: bool,
    /// Set by a failed write or sync.
    poisoned: bool,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("snapshot", &self.snapshot)
            .field("last_index", &self.last_index())
            .field("pending_bytes", &self.pending.len())
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl Wal {
    /// Opens (or creates) the log in `dir/wal`, cuts a torn tail, and returns
    /// what survived.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<(Wal, Recovered), WalError> {
        let wal_dir = dir.join("wal");
        let existed = wal_dir.is_dir();
        fs::create_dir_all(&wal_dir).map_err(io_err("create directory", &wal_dir))?;
        if !existed {
            sync_dir(dir)?;
        }
        let lock = lock_dir(&wal_dir)?;
        let files = list_segments(&wal_dir)?;

        let mut replay = Replay::new();
        let mut segments = Vec::with_capacity(files.len());
        let mut tail_fix = TailFix::None;
        let mut newest_len = 0;
        for (i, (seq, path)) in files.iter().enumerate() {
            let newest = i + 1 == files.len();
            let bytes = fs::read(path).map_err(io_err("read", path))?;
            let corrupt = |offset: usize, reason: String| WalError::Corrupt {
                path: path.clone(),
                offset: offset as u64,
                reason,
            };
            let scan = scan_segment(&bytes);
            match scan.stop {
                Stop::Clean => {}
                Stop::Corrupt { offset, reason } => return Err(corrupt(offset, reason)),
                Stop::Zeros if !newest => {
                    return Err(corrupt(
                        scan.end,
                        "zeros where records should be in a completed segment".to_string(),
                    ));
                }
                Stop::Torn(reason) if !newest => {
                    return Err(corrupt(
                        scan.end,
                        format!("{reason} in a completed segment"),
                    ));
                }
                Stop::Zeros => tail_fix = TailFix::Truncate(scan.end as u64),
                Stop::Torn(reason) => {
                    tracing::warn!(
                        file = %path.display(),
                        offset = scan.end,
                        reason,
                        "cutting the torn tail of the WAL"
                    );
                    tail_fix = TailFix::Truncate(scan.end as u64);
                }
            }
            let mut records = scan.records.into_iter();
            match records.next() {
                Some((_, Record::Header { seq: found })) if found == *seq => {}
                Some((offset, Record::Header { seq: found })) => {
                    return Err(corrupt(
                        offset,
                        format!("header says segment {found:#x}, the file name {seq:#x}"),
                    ));
                }
                Some((offset, _)) => {
                    return Err(corrupt(
                        offset,
                        "segment does not start with a header".into(),
                    ));
                }
                None if newest => {
                    tail_fix = TailFix::Remove;
                    continue;
                }
                None => return Err(corrupt(0, "segment holds no records".into())),
            }
            let mut max_index = 0;
            for (offset, record) in records {
                if let Record::Entry(e) = &record {
                    max_index = max_index.max(e.index);
                }
                replay
                    .apply(record)
                    .map_err(|reason| corrupt(offset, reason))?;
            }
            newest_len = scan.end as u64;
            segments.push(Segment {
                seq: *seq,
                path: path.clone(),
                max_index,
            });
        }
        let mut recovered = replay.finish().map_err(|reason| WalError::Inconsistent {
            dir: wal_dir.clone(),
            reason,
        })?;

        // Only now that everything replayed do we touch the files.
        match tail_fix {
            TailFix::None => {}
            TailFix::Truncate(len) => {
                if let Some(seg) = segments.last() {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&seg.path)
                        .map_err(io_err("open", &seg.path))?;
                    f.set_len(len).map_err(io_err("truncate", &seg.path))?;
                    f.sync_all().map_err(io_err("fsync", &seg.path))?;
                }
            }
            TailFix::Remove => {
                if let Some((_, path)) = files.last() {
                    tracing::warn!(file = %path.display(), "removing a WAL segment whose header never reached the disk");
                    fs::remove_file(path).map_err(io_err("remove", path))?;
                    sync_dir(&wal_dir)?;
                }
            }
        }

        let snapshot = (recovered.snapshot_index, recovered.snapshot_term);
        let terms: Vec<u64> = recovered.entries.iter().map(|e| e.term).collect();
        let last_index = snapshot.0 + terms.len() as u64;
        let (file, file_len) = match segments.last() {
            Some(seg) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&seg.path)
                    .map_err(io_err("open", &seg.path))?;
                (file, newest_len)
            }
            None => {
                recovered.fresh = true;
                let seq = files.last().map_or(0, |(seq, _)| *seq);
                let path = wal_dir.join(segment_name(seq, last_index.saturating_add(1)));
                let prologue = segment_prologue(
                    seq,
                    last_index.saturating_add(1),
                    snapshot,
                    &recovered.hard_state,
                    recovered.conf_state.as_ref(),
                )?;
                let mut file = OpenOptions::new()
                    .append(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_err("create", &path))?;
                file.write_all(&prologue).map_err(io_err("write", &path))?;
                file.sync_data().map_err(io_err("fdatasync", &path))?;
                sync_dir(&wal_dir)?;
                segments.push(Segment {
                    seq,
                    path,
                    max_index: 0,
                });
                (file, prologue.len() as u64)
            }
        };

        let wal = Wal {
            dir: wal_dir,
            opts,
            _lock: lock,
            segments,
            file,
            file_len,
            snapshot,
            durable_snapshot: snapshot,
            terms,
            hard_state: recovered.hard_state.clone(),
            conf_state: recovered.conf_state.clone(),
            pending: Vec::new(),
            pending_first_index: None,
            pending_max_index: 0,
            pending_hard_state: None,
            pending_conf_state: None,
            rewrite_state: false,
            poisoned: false,
        };
        Ok((wal, recovered))
    }

    /// The log directory (`DIR/wal`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index of the last entry, buffered ones included (the snapshot index
    /// when the log is empty).
    pub fn last_index(&self) -> u64 {
        self.snapshot.0 + self.terms.len() as u64
    }

    /// Index of the first entry the log can hold: one past the snapshot point.
    pub fn first_index(&self) -> u64 {
        self.snapshot.0.saturating_add(1)
    }

    /// Entries up to this index are covered by a snapshot.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.0
    }

    /// Term of the entry at [`Wal::snapshot_index`].
    pub fn snapshot_term(&self) -> u64 {
        self.snapshot.1
    }

    /// Term of the entry at `index`, if the log (or its snapshot point) knows it.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.0 {
            return Some(self.snapshot.1);
        }
        let offset = index.checked_sub(self.snapshot.0.saturating_add(1))?;
        self.terms.get(usize::try_from(offset).ok()?).copied()
    }

    /// The latest hard state given, synced or not.
    pub fn hard_state(&self) -> &HardState {
        self.pending_hard_state.as_ref().unwrap_or(&self.hard_state)
    }

    /// The latest conf state given, synced or not.
    pub fn conf_state(&self) -> Option<&ConfState> {
        self.pending_conf_state
            .as_ref()
            .or(self.conf_state.as_ref())
    }

    fn check_usable(&self) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Buffers contiguous `entries` for the next [`Wal::sync`]. An entry at or
    /// below the last index first drops the log from its index on, as raft-rs
    /// does when a leader overwrites an uncommitted suffix.
    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        self.check_usable()?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index <= self.snapshot.0 {
            return Err(WalError::InvalidAppend {
                index: first.index,
                reason: format!("at or below the snapshot point {}", self.snapshot.0),
            });
        }
        if first.index > self.last_index().saturating_add(1) {
            return Err(WalError::InvalidAppend {
                index: first.index,
                reason: format!("leaves a gap after the last index {}", self.last_index()),
            });
        }
        for pair in entries.windows(2) {
            if pair[0].index.checked_add(1) != Some(pair[1].index) {
                return Err(WalError::InvalidAppend {
                    index: pair[1].index,
                    reason: format!("does not follow entry {} in the batch", pair[0].index),
                });
            }
        }
        let start = self.pending.len();
        for e in entries {
            if let Err(err) = put_message(&mut self.pending, Kind::Entry, e) {
                self.pending.truncate(start);
                return Err(err);
            }
        }
        self.terms
            .truncate((first.index - self.snapshot.0 - 1) as usize);
        self.terms.extend(entries.iter().map(|e| e.term));
        let last = entries.last().map_or(first.index, |e| e.index);
        self.pending_first_index.get_or_insert(first.index);
        self.pending_max_index = self.pending_max_index.max(last);
        Ok(())
    }

    /// Records `hs` for the next [`Wal::sync`]; it is written after the
    /// batch's entries. The latest one wins.
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<(), WalError> {
        self.check_usable()?;
        self.pending_hard_state = Some(hs.clone());
        Ok(())
    }

    /// Records the applied `cs` for the next [`Wal::sync`]. The latest one wins.
    pub fn set_conf_state(&mut self, cs: &ConfState) -> Result<(), WalError> {
        self.check_usable()?;
        self.pending_conf_state = Some(cs.clone());
        Ok(())
    }

    /// Writes everything buffered with one write, `fdatasync`s it, and fsyncs
    /// the directory when a new segment was started. Once this returns `Ok`,
    /// the batch survives a crash. Without buffered changes it does nothing.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.check_usable()?;
        let result = self.write_batch();
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn write_batch(&mut self) -> Result<(), WalError> {
        let hard_state = self
            .pending_hard_state
            .take()
            .or_else(|| self.rewrite_state.then(|| self.hard_state.clone()));
        let conf_state = self.pending_conf_state.take().or_else(|| {
            if self.rewrite_state {
                self.conf_state.clone()
            } else {
                None
            }
        });
        if self.pending.is_empty() && hard_state.is_none() && conf_state.is_none() {
            return Ok(());
        }
        if let Some(hs) = &hard_state {
            put_message(&mut self.pending, Kind::HardState, hs)?;
        }
        if let Some(cs) = &conf_state {
            put_message(&mut self.pending, Kind::ConfState, cs)?;
        }

        if self.file_len >= self.opts.segment_size {
            let seq = self.segments.last().map_or(0, |s| s.seq.saturating_add(1));
            let first_index = self
                .pending_first_index
                .unwrap_or(self.last_index().saturating_add(1));
            let path = self.dir.join(segment_name(seq, first_index));
            // The prologue carries the state durable before this batch, so a
            // torn batch cannot leave state that its entries never reached.
            let mut bytes = segment_prologue(
                seq,
                first_index,
                self.durable_snapshot,
                &self.hard_state,
                self.conf_state.as_ref(),
            )?;
            bytes.extend_from_slice(&self.pending);
            let mut file = OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&path)
                .map_err(io_err("create", &path))?;
            file.write_all(&bytes).map_err(io_err("write", &path))?;
            file.sync_data().map_err(io_err("fdatasync", &path))?;
            sync_dir(&self.dir)?;
            self.segments.push(Segment {
                seq,
                path,
                max_index: 0,
            });
            self.file = file;
            self.file_len = bytes.len() as u64;
        } else {
            let path = match self.segments.last() {
                Some(seg) => seg.path.as_path(),
                None => self.dir.as_path(),
            };
            self.file
                .write_all(&self.pending)
                .map_err(io_err("write", path))?;
            self.file.sync_data().map_err(io_err("fdatasync", path))?;
            self.file_len += self.pending.len() as u64;
        }

        if let Some(seg) = self.segments.last_mut() {
            seg.max_index = seg.max_index.max(self.pending_max_index);
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs;
        }
        if conf_state.is_some() {
            self.conf_state = conf_state;
        }
        self.durable_snapshot = self.snapshot;
        self.pending.clear();
        if self.pending.capacity() > KEEP_BUFFER {
            self.pending = Vec::new();
        }
        self.pending_first_index = None;
        self.pending_max_index = 0;
        self.rewrite_state = false;
        Ok(())
    }

    /// Local log compaction: a snapshot now covers the entries up to `index`
    /// (whose term must be `term`). Writes that fact and everything buffered,
    /// syncs, then deletes the segments whose entries are all covered.
    /// A point at or below the current snapshot point is a no-op.
    pub fn compact(&mut self, index: u64, term: u64) -> Result<(), WalError> {
        self.check_usable()?;
        let (snapshot_index, _) = self.snapshot;
        if index <= snapshot_index {
            return Ok(());
        }
        match self.term(index) {
            Some(t) if t == term => {}
            Some(t) => {
                return Err(WalError::InvalidSnapshot {
                    index,
                    term,
                    reason: format!("the entry at {index} has term {t}"),
                });
            }
            None => {
                return Err(WalError::InvalidSnapshot {
                    index,
                    term,
                    reason: format!("the log ends at index {}", self.last_index()),
                });
            }
        }
        put_point(&mut self.pending, Kind::Compact, index, term)?;
        self.terms.drain(..(index - snapshot_index) as usize);
        self.snapshot = (index, term);
        self.rewrite_state = true;
        self.sync()?;
        self.remove_covered_segments()
    }

    /// A snapshot received from the leader at (`index`, `term`) replaces the
    /// whole log, as `MemStorage::apply_snapshot` does. Writes that fact and
    /// everything buffered, syncs, then deletes covered segments.
    pub fn apply_snapshot(&mut self, index: u64, term: u64) -> Result<(), WalError> {
        self.check_usable()?;
        let (snapshot_index, snapshot_term) = self.snapshot;
        if index == snapshot_index && term == snapshot_term {
            return Ok(());
        }
        if index <= snapshot_index {
            return Err(WalError::InvalidSnapshot {
                index,
                term,
                reason: format!(
                    "not after the current snapshot point {snapshot_index} term {snapshot_term}"
                ),
            });
        }
        put_point(&mut self.pending, Kind::Install, index, term)?;
        self.terms.clear();
        self.snapshot = (index, term);
        self.rewrite_state = true;
        self.sync()?;
        self.remove_covered_segments()
    }

    /// Deletes, oldest first, the completed segments whose entries the
    /// snapshot point covers. Oldest first keeps the seqs contiguous if we
    /// crash half way.
    fn remove_covered_segments(&mut self) -> Result<(), WalError> {
        let mut removed = 0;
        let mut result = Ok(());
        while removed + 1 < self.segments.len()
            && self.segments[removed].max_index <= self.snapshot.0
        {
            let path = &self.segments[removed].path;
            if let Err(e) = fs::remove_file(path) {
                result = Err(io_err("remove", path)(e));
                break;
            }
            removed += 1;
        }
        self.segments.drain(..removed);
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use proptest::prelude::*;
    use tempfile::TempDir;

    const SMALL: u64 = 512;

    fn opts(segment_size: u64) -> WalOptions {
        WalOptions { segment_size }
    }

    fn payload(index: u64, term: u64) -> Vec<u8> {
        format!("entry {index} term {term}; ")
            .repeat((index % 4 + 1) as usize)
            .into_bytes()
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: payload(index, term),
            ..Default::default()
        }
    }

    fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
        (first..=last).map(|i| entry(i, term)).collect()
    }

    fn hard(term: u64, vote: u64, commit: u64) -> HardState {
        HardState { term, vote, commit }
    }

    fn open(dir: &Path, segment_size: u64) -> (Wal, Recovered) {
        match Wal::open(dir, opts(segment_size)) {
            Ok(opened) => opened,
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }

    fn points(entries: &[Entry]) -> Vec<(u64, u64)> {
        entries.iter().map(|e| (e.index, e.term)).collect()
    }

    /// The segment files on disk, oldest first.
    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
            .unwrap()
            .map(|d| d.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        files.sort();
        files
    }

    fn newest_segment(dir: &Path) -> PathBuf {
        segment_files(dir).pop().unwrap()
    }

    /// Offsets of the records in a segment file.
    fn record_offsets(path: &Path) -> Vec<usize> {
        let scan = scan_segment(&fs::read(path).unwrap());
        assert_eq!(scan.stop, Stop::Clean, "{}", path.display());
        scan.records.iter().map(|(offset, _)| *offset).collect()
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for dirent in fs::read_dir(from).unwrap() {
            let dirent = dirent.unwrap();
            fs::copy(dirent.path(), to.join(dirent.file_name())).unwrap();
        }
    }

    /// A log of entries 1..=5 (one batch each), then entry 6 alone as the
    /// last record of the only segment.
    fn six_entries(dir: &Path) {
        let (mut wal, _) = open(dir, DEFAULT_SEGMENT_SIZE);
        wal.set_hard_state(&hard(1, 1, 0)).unwrap();
        for i in 1..=5 {
            wal.append_entries(&[entry(i, 1)]).unwrap();
            wal.sync().unwrap();
        }
        wal.append_entries(&[entry(6, 1)]).unwrap();
        wal.sync().unwrap();
    }

    #[test]
    fn fresh_directory_opens_empty() {
        let dir = TempDir::new().unwrap();
        let (wal, rec) = open(dir.path(), SMALL);
        assert!(rec.fresh);
        assert_eq!(
            rec,
            Recovered {
                fresh: true,
                ..Default::default()
            }
        );
        assert_eq!((wal.last_index(), wal.first_index()), (0, 1));
        assert_eq!(
            segment_files(dir.path()),
            vec![dir.path().join("wal/0000000000000000-0000000000000001.wal")]
        );
        drop(wal);
        let (_, rec) = open(dir.path(), SMALL);
        assert!(!rec.fresh);
    }

    #[test]
    fn round_trip_entries_hard_and_conf_state() {
        let dir = TempDir::new().unwrap();
        let conf = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        {
            let (mut wal, _) = open(dir.path(), DEFAULT_SEGMENT_SIZE);
            wal.append_entries(&entries(1, 10, 1)).unwrap();
            wal.set_hard_state(&hard(1, 1, 7)).unwrap();
            wal.set_conf_state(&conf).unwrap();
            wal.sync().unwrap();
            wal.append_entries(&entries(11, 12, 2)).unwrap();
            wal.set_hard_state(&hard(2, 3, 12)).unwrap();
            wal.sync().unwrap();
            assert_eq!(wal.term(11), Some(2));
        }
        let (wal, rec) = open(dir.path(), DEFAULT_SEGMENT_SIZE);
        let mut want = entries(1, 10, 1);
        want.extend(entries(11, 12, 2));
        assert_eq!(rec.entries, want);
        assert_eq!(rec.hard_state, hard(2, 3, 12));
        assert_eq!(rec.conf_state, Some(conf));
        assert_eq!((rec.snapshot_index, rec.fresh), (0, false));
        assert_eq!(wal.last_index(), 12);
        assert_eq!(wal.term(5), Some(1));
        assert_eq!(wal.term(13), None);
    }

    #[test]
    fn appends_are_buffered_until_sync() {
        let dir = TempDir::new().unwrap();
        let (mut wal, _) = open(dir.path(), DEFAULT_SEGMENT_SIZE);
        let seg = newest_segment(dir.path());
        let before = fs::metadata(&seg).unwrap().len();
        wal.append_entries(&entries(1, 500, 1)).unwrap();
        wal.set_hard_state(&hard(1, 1, 500)).unwrap();
        assert_eq!(fs::metadata(&seg).unwrap().len(), before);
        wal.sync().unwrap();
        let offsets = record_offsets(&seg);
        // Prologue (header, compact, hard state), the batch, its hard state last.
        assert_eq!(offsets.len(), 3 + 500 + 1);
        let scan = scan_segment(&fs::read(&seg).unwrap());
        assert_eq!(
            scan.records.last().map(|(_, r)| r.clone()),
            Some(Record::HardState(hard(1, 1, 500)))
        );
        // A sync with nothing buffered writes nothing.
        let len = fs::metadata(&seg).unwrap().len();
        wal.sync().unwrap();
        assert_eq!(fs::metadata(&seg).unwrap().len(), len);
    }

    /// Operations for the overwrite table.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        Append(u64, u64, u64),
        Sync,
        Reopen,
    }

    #[test]
    fn overwrites_truncate_the_suffix() {
        use Step::*;
        let t1 = |a: u64, b: u64| (a..=b).map(|i| (i, 1)).collect::<Vec<_>>();
        type Case = (&'static str, Vec<Step>, Vec<(u64, u64)>);
        let cases: Vec<Case> = vec![
            (
                "within one batch",
                vec![Append(1, 5, 1), Append(3, 4, 2), Sync],
                [t1(1, 2), vec![(3, 2), (4, 2)]].concat(),
            ),
            (
                "after a sync",
                vec![Append(1, 5, 1), Sync, Append(4, 6, 2), Sync],
                [t1(1, 3), vec![(4, 2), (5, 2), (6, 2)]].concat(),
            ),
            (
                "after a reopen",
                vec![Append(1, 5, 1), Sync, Reopen, Append(2, 2, 3), Sync],
                vec![(1, 1), (2, 3)],
            ),
            (
                "the whole log",
                vec![Append(1, 5, 1), Sync, Append(1, 2, 2), Sync],
                vec![(1, 2), (2, 2)],
            ),
            (
                "across segments",
                vec![
                    Append(1, 10, 1),
                    Sync,
                    Append(11, 20, 1),
                    Sync,
                    Append(21, 30, 1),
                    Sync,
                    Append(5, 7, 2),
                    Sync,
                    Append(8, 8, 2),
                    Sync,
                ],
                [t1(1, 4), vec![(5, 2), (6, 2), (7, 2), (8, 2)]].concat(),
            ),
            (
                "unsynced overwrite is lost",
                vec![Append(1, 5, 1), Sync, Append(3, 3, 2), Reopen],
                t1(1, 5),
            ),
        ];
        for (name, steps, want) in cases {
            let dir = TempDir::new().unwrap();
            let (mut wal, _) = open(dir.path(), 256);
            for step in steps {
                match step {
                    Append(a, b, t) => wal.append_entries(&entries(a, b, t)).unwrap(),
                    Sync => wal.sync().unwrap(),
                    Reopen => {
                        drop(wal);
                        wal = open(dir.path(), 256).0;
                    }
                }
            }
            let live: Vec<(u64, u64)> = (wal.first_index()..=wal.last_index())
                .map(|i| (i, wal.term(i).unwrap()))
                .collect();
            assert_eq!(live, want, "{name}: live view");
            drop(wal);
            let (_, rec) = open(dir.path(), 256);
            assert_eq!(points(&rec.entries), want, "{name}: recovered");
            for e in &rec.entries {
                assert_eq!(
                    e.data,
                    payload(e.index, e.term),
                    "{name}: data of {}",
                    e.index
                );
            }
        }
    }

    #[test]
    fn invalid_appends_and_snapshot_points_are_refused() {
        let dir = TempDir::new().unwrap();
        let (mut wal, _) = open(dir.path(), SMALL);
        wal.append_entries(&entries(1, 10, 2)).unwrap();
        wal.compact(3, 2).unwrap();
        let bad_appends: Vec<(&str, Vec<Entry>)> = vec![
            ("gap", vec![entry(12, 2)]),
            ("compacted", vec![entry(3, 2)]),
            ("not contiguous", vec![entry(9, 2), entry(11, 2)]),
        ];
        for (name, batch) in bad_appends {
            let err = wal.append_entries(&batch).unwrap_err();
            assert!(
                matches!(err, WalError::InvalidAppend { .. }),
                "{name}: {err}"
            );
        }
        let bad_compactions = [(11, 2, "past the end"), (5, 1, "wrong term")];
        for (index, term, name) in bad_compactions {
            let err = wal.compact(index, term).unwrap_err();
            assert!(
                matches!(err, WalError::InvalidSnapshot { .. }),
                "{name}: {err}"
            );
        }
        assert!(matches!(
            wal.apply_snapshot(2, 2),
            Err(WalError::InvalidSnapshot { .. })
        ));
        // A stale compaction is a no-op; nothing above changed the log.
        wal.compact(2, 7).unwrap();
        assert_eq!((wal.snapshot_index(), wal.last_index()), (3, 10));
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = open(dir.path(), SMALL);
        assert_eq!(
            points(&rec.entries),
            (4..=10).map(|i| (i, 2)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn segments_roll_over_and_replay_in_order() {
        let dir = TempDir::new().unwrap();
        {
            let (mut wal, _) = open(dir.path(), SMALL);
            for i in 1..=100 {
                wal.append_entries(&[entry(i, 1)]).unwrap();
                wal.set_hard_state(&hard(1, 1, i)).unwrap();
                wal.sync().unwrap();
            }
        }
        let files = segment_files(dir.path());
        assert!(files.len() > 5, "{} segments", files.len());
        for (seq, path) in files.iter().enumerate() {
            let name = path.file_name().unwrap().to_str().unwrap();
            let (found_seq, first_index) = parse_segment_name(name).unwrap();
            assert_eq!(found_seq, seq as u64);
            let scan = scan_segment(&fs::read(path).unwrap());
            let first_entry = scan.records.iter().find_map(|(_, r)| match r {
                Record::Entry(e) => Some(e.index),
                _ => None,
            });
            assert_eq!(first_entry.unwrap_or(first_index), first_index, "{name}");
        }
        let (_, rec) = open(dir.path(), SMALL);
        assert_eq!(rec.entries, entries(1, 100, 1));
        assert_eq!(rec.hard_state, hard(1, 1, 100));
    }

    #[test]
    fn compaction_deletes_covered_segments_and_keeps_hard_state() {
        let dir = TempDir::new().unwrap();
        let conf = ConfState {
            voters: vec![7],
            ..Default::default()
        };
        let first_segment;
        {
            let (mut wal, _) = open(dir.path(), SMALL);
            // The only hard and conf state records land in the first segment.
            wal.set_hard_state(&hard(3, 2, 0)).unwrap();
            wal.set_conf_state(&conf).unwrap();
            wal.sync().unwrap();
            first_segment = newest_segment(dir.path());
            for i in 1..=200 {
                wal.append_entries(&[entry(i, 3)]).unwrap();
                wal.sync().unwrap();
            }
            let before = segment_files(dir.path()).len();
            // Unsynced entries are written by the compaction's own sync.
            wal.append_entries(&entries(201, 205, 3)).unwrap();
            wal.compact(150, 3).unwrap();
            let after = segment_files(dir.path());
            assert!(after.len() < before, "{before} -> {}", after.len());
            assert!(!first_segment.exists());
            assert_eq!(after.len(), wal.segments.len());
            // Exactly the covered prefix is gone: the oldest left still holds live entries.
            assert!(wal.segments[0].max_index > 150);
            assert_eq!((wal.first_index(), wal.last_index()), (151, 205));
        }
        let (mut wal, rec) = open(dir.path(), SMALL);
        assert_eq!((rec.snapshot_index, rec.snapshot_term), (150, 3));
        assert_eq!(rec.entries, entries(151, 205, 3));
        assert_eq!(rec.hard_state, hard(3, 2, 0));
        assert_eq!(rec.conf_state, Some(conf.clone()));
        // Compacting everything leaves one segment that still knows the state.
        wal.compact(205, 3).unwrap();
        assert_eq!(segment_files(dir.path()).len(), 1);
        drop(wal);
        let (_, rec) = open(dir.path(), SMALL);
        assert_eq!((rec.snapshot_index, rec.entries.len()), (205, 0));
        assert_eq!(rec.hard_state, hard(3, 2, 0));
        assert_eq!(rec.conf_state, Some(conf));
    }

    #[test]
    fn installed_snapshot_replaces_the_log() {
        let dir = TempDir::new().unwrap();
        {
            let (mut wal, _) = open(dir.path(), SMALL);
            for i in 1..=50 {
                wal.append_entries(&[entry(i, 1)]).unwrap();
                wal.sync().unwrap();
            }
            wal.apply_snapshot(80, 4).unwrap();
            assert_eq!((wal.last_index(), wal.term(80)), (80, Some(4)));
            assert_eq!(segment_files(dir.path()).len(), 1);
            wal.append_entries(&entries(81, 90, 4)).unwrap();
            wal.set_hard_state(&hard(4, 0, 85)).unwrap();
            wal.sync().unwrap();
        }
        let (mut wal, rec) = open(dir.path(), SMALL);
        assert_eq!((rec.snapshot_index, rec.snapshot_term), (80, 4));
        assert_eq!(rec.entries, entries(81, 90, 4));
        assert_eq!(rec.hard_state, hard(4, 0, 85));
        // A snapshot behind the log (leader's term differs at 85) drops it all.
        wal.apply_snapshot(85, 5).unwrap();
        drop(wal);
        let (_, rec) = open(dir.path(), SMALL);
        assert_eq!((rec.snapshot_index, rec.snapshot_term), (85, 5));
        assert!(rec.entries.is_empty());
    }

    #[test]
    fn crash_after_sync_keeps_exactly_the_synced_batches() {
        let dir = TempDir::new().unwrap();
        let disk = TempDir::new().unwrap();
        let (mut wal, _) = open(dir.path(), SMALL);
        wal.append_entries(&entries(1, 10, 1)).unwrap();
        wal.set_hard_state(&hard(1, 1, 10)).unwrap();
        wal.sync().unwrap();
        wal.append_entries(&entries(11, 15, 1)).unwrap();
        wal.set_hard_state(&hard(1, 1, 15)).unwrap();
        // The process "dies" here: what is on disk is all a restart sees.
        copy_dir(&dir.path().join("wal"), &disk.path().join("wal"));
        let (_, rec) = open(disk.path(), SMALL);
        assert_eq!(rec.entries, entries(1, 10, 1));
        assert_eq!(rec.hard_state, hard(1, 1, 10));
        drop(wal);
        let (_, rec) = open(dir.path(), SMALL);
        assert_eq!(rec.entries, entries(1, 10, 1));
    }

    #[test]
    fn torn_last_record_is_cut_at_every_offset() {
        let dir = TempDir::new().unwrap();
        six_entries(dir.path());
        let seg = newest_segment(dir.path());
        let original = fs::read(&seg).unwrap();
        let last = *record_offsets(&seg).last().unwrap();
        assert!(original.len() - last > 40);
        for cut in last..original.len() {
            fs::write(&seg, &original[..cut]).unwrap();
            let (wal, rec) = open(dir.path(), DEFAULT_SEGMENT_SIZE);
            assert_eq!(rec.entries, entries(1, 5, 1), "cut at {cut}");
            assert_eq!(rec.hard_state, hard(1, 1, 0), "cut at {cut}");
            assert_eq!(wal.last_index(), 5);
            assert_eq!(
                fs::metadata(&seg).unwrap().len(),
                last as u64,
                "cut at {cut}"
            );
        }
        // The cut log takes new writes and replays cleanly.
        let (mut wal, _) = open(dir.path(), DEFAULT_SEGMENT_SIZE);
        wal.append_entries(&entries(6, 7, 2)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = open(dir.path(), DEFAULT_SEGMENT_SIZE);
        assert_eq!(points(&rec.entries)[5..], [(6, 2), (7, 2)]);
    }

    #[test]
    fn torn_new_segment_is_cut_or_removed() {
        let dir = TempDir::new().unwrap();
        {
            let (mut wal, _) = open(dir.path(), 1);
            wal.append_entries(&entries(1, 5, 1)).unwrap();
            wal.set_hard_state(&hard(1, 1, 5)).unwrap();
            wal.sync().unwrap();
            wal.append_entries(&[entry(6, 1)]).unwrap();
            wal.set_hard_state(&hard(1, 1, 6)).unwrap();
            wal.sync().unwrap();
        }
        // Size 1: every sync starts a segment; the last one holds entry 6.
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 3);
        let seg = &files[2];
        let original = fs::read(seg).unwrap();
        // Header, compact, hard state, entry 6, the batch's hard state.
        let offsets = record_offsets(seg);
        assert_eq!(offsets.len(), 5);
        let (header_end, entry_end) = (offsets[1], offsets[4]);
        for cut in 0..original.len() {
            fs::write(seg, &original[..cut]).unwrap();
            let (wal, rec) = open(dir.path(), 1);
            let last = if cut < entry_end { 5 } else { 6 };
            assert_eq!(rec.entries, entries(1, last, 1), "cut at {cut}");
            assert_eq!(rec.hard_state, hard(1, 1, 5), "cut at {cut}");
            drop(wal);
            if cut < header_end {
                assert!(!seg.exists(), "cut at {cut}: headless segment kept");
            } else {
                assert!(fs::metadata(seg).unwrap().len() <= cut as u64);
            }
        }
    }

    #[test]
    fn bit_flip_in_last_record_is_cut() {
        let dir = TempDir::new().unwrap();
        six_entries(dir.path());
        let seg = newest_segment(dir.path());
        let original = fs::read(&seg).unwrap();
        let last = *record_offsets(&seg).last().unwrap();
        for at in last..original.len() {
            let mut damaged = original.clone();
            damaged[at] ^= 1 << (at % 8);
            fs::write(&seg, &damaged).unwrap();
            let (_, rec) = open(dir.path(), DEFAULT_SEGMENT_SIZE);
            assert_eq!(rec.entries, entries(1, 5, 1), "flip at {at}");
        }
    }

    #[test]
    fn bit_flip_in_earlier_record_is_reported_with_file_and_offset() {
        let dir = TempDir::new().unwrap();
        six_entries(dir.path());
        let seg = newest_segment(dir.path());
        let original = fs::read(&seg).unwrap();
        let offsets = record_offsets(&seg);
        // Every record but the last: the crc, length, type and payload bytes.
        for pair in offsets.windows(2) {
            let (start, end) = (pair[0], pair[1]);
            let spots = [start, start + 5, start + 8, start + 9, end - 1];
            for at in spots.into_iter().filter(|&at| at < end) {
                let mut damaged = original.clone();
                damaged[at] ^= 0x10;
                fs::write(&seg, &damaged).unwrap();
                match Wal::open(dir.path(), WalOptions::default()) {
                    Err(err @ WalError::Corrupt { .. }) => {
                        let WalError::Corrupt { path, offset, .. } = &err else {
                            unreachable!()
                        };
                        assert_eq!((path, *offset), (&seg, start as u64), "flip at {at}");
                        let text = err.to_string();
                        assert!(text.contains(seg.to_str().unwrap()), "{text}");
                        assert!(text.contains(&format!("offset {start}")), "{text}");
                    }
                    Err(other) => panic!("flip at {at}: {other}"),
                    Ok(_) => panic!("flip at {at} went unnoticed"),
                }
                // Nothing was cut from the damaged file.
                assert_eq!(fs::read(&seg).unwrap(), damaged);
            }
        }
    }

    #[test]
    fn damage_in_a_completed_segment_is_reported() {
        let dir = TempDir::new().unwrap();
        {
            let (mut wal, _) = open(dir.path(), SMALL);
            for i in 1..=40 {
                wal.append_entries(&[entry(i, 1)]).unwrap();
                wal.sync().unwrap();
            }
        }
        let files = segment_files(dir.path());
        assert!(files.len() >= 3);
        let older = &files[1];
        let original = fs::read(older).unwrap();
        let last = *record_offsets(older).last().unwrap();
        let damages: Vec<(&str, Vec<u8>)> = vec![
            ("torn tail", original[..original.len() - 3].to_vec()),
            ("flipped last record", {
                let mut d = original.clone();
                d[last + 10] ^= 4;
                d
            }),
            ("zeroed tail", {
                let mut d = original.clone();
                d.extend_from_slice(&[0; 64]);
                d
            }),
        ];
        for (name, bytes) in damages {
            fs::write(older, &bytes).unwrap();
            let err = Wal::open(dir.path(), opts(SMALL)).unwrap_err();
            assert!(
                matches!(&err, WalError::Corrupt { path, .. } if path == older),
                "{name}: {err}"
            );
        }
        fs::write(older, &original).unwrap();
        // A missing segment in the middle is not a log.
        fs::remove_file(&files[1]).unwrap();
        let err = Wal::open(dir.path(), opts(SMALL)).unwrap_err();
        assert!(matches!(err, WalError::Inconsistent { .. }), "{err}");
    }

    #[test]
    fn zeroed_tail_is_not_corruption() {
        let dir = TempDir::new().unwrap();
        six_entries(dir.path());
        let seg = newest_segment(dir.path());
        let len = fs::metadata(&seg).unwrap().len();
        let mut bytes = fs::read(&seg).unwrap();
        bytes.extend_from_slice(&[0; 4096]);
        fs::write(&seg, &bytes).unwrap();
        let (mut wal, rec) = open(dir.path(), DEFAULT_SEGMENT_SIZE);
        assert_eq!(rec.entries, entries(1, 6, 1));
        assert_eq!(fs::metadata(&seg).unwrap().len(), len);
        wal.append_entries(&[entry(7, 1)]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = open(dir.path(), DEFAULT_SEGMENT_SIZE);
        assert_eq!(rec.entries, entries(1, 7, 1));
    }

    #[test]
    fn a_second_open_is_refused_while_the_log_is_open() {
        let dir = TempDir::new().unwrap();
        let (wal, _) = open(dir.path(), SMALL);
        let err = Wal::open(dir.path(), opts(SMALL)).unwrap_err();
        assert!(matches!(err, WalError::Locked { .. }), "{err}");
        drop(wal);
        open(dir.path(), SMALL);
    }

    #[test]
    fn tail_classification() {
        let mut good = Vec::new();
        put_point(&mut good, Kind::Compact, 1, 1).unwrap();
        let torn = good[..good.len() - 2].to_vec();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("clean", [good.clone(), good.clone()].concat(), "clean"),
            ("zeros", [good.clone(), vec![0; 100]].concat(), "zeros"),
            ("torn", [good.clone(), torn.clone()].concat(), "torn"),
            ("garbage", [good.clone(), vec![0xab; 30]].concat(), "torn"),
            (
                "damage before a valid record",
                [good.clone(), torn.clone(), good.clone()].concat(),
                "corrupt",
            ),
            (
                "zeros then a record",
                [vec![0; 20], good.clone()].concat(),
                "corrupt",
            ),
        ];
        for (name, bytes, want) in cases {
            let got = match scan_segment(&bytes).stop {
                Stop::Clean => "clean",
                Stop::Zeros => "zeros",
                Stop::Torn(_) => "torn",
                Stop::Corrupt { .. } => "corrupt",
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn replay_rules() {
        use Record::*;
        let e = |i, t| Entry(entry(i, t));
        let cmp = |index, term| Compact { index, term };
        let ok = |want: Vec<(u64, u64)>| Ok::<_, ()>(want);
        type Case = (&'static str, Vec<Record>, Result<Vec<(u64, u64)>, ()>);
        let cases: Vec<Case> = vec![
            ("plain", vec![e(1, 1), e(2, 1)], ok(vec![(1, 1), (2, 1)])),
            (
                "overwrite",
                vec![e(1, 1), e(2, 1), e(2, 2)],
                ok(vec![(1, 1), (2, 2)]),
            ),
            ("gap", vec![e(1, 1), e(3, 1)], Err(())),
            (
                "compact",
                vec![e(1, 1), e(2, 1), cmp(1, 1)],
                ok(vec![(2, 1)]),
            ),
            ("compact wrong term", vec![e(1, 1), cmp(1, 2)], Err(())),
            ("compact past the end", vec![e(1, 1), cmp(2, 1)], Err(())),
            (
                "compact backwards",
                vec![e(1, 1), e(2, 1), cmp(2, 1), cmp(1, 1)],
                Err(()),
            ),
            (
                "install",
                vec![e(1, 1), Install { index: 9, term: 2 }, e(10, 2)],
                ok(vec![(10, 2)]),
            ),
            (
                "gap after install",
                vec![Install { index: 9, term: 2 }, e(11, 2)],
                Err(()),
            ),
            (
                "entry below snapshot",
                vec![cmp(0, 0), Install { index: 9, term: 2 }, e(9, 2)],
                Err(()),
            ),
            // Replay starting after deleted segments: a hole a later compaction covers.
            (
                "covered hole",
                vec![cmp(3, 1), e(8, 1), e(9, 1), cmp(8, 1)],
                ok(vec![(9, 1)]),
            ),
            (
                "hole compacted inside",
                vec![cmp(3, 1), e(8, 1), cmp(5, 1), cmp(7, 1)],
                ok(vec![(8, 1)]),
            ),
            ("uncovered hole", vec![cmp(3, 1), e(8, 1), e(9, 1)], Err(())),
            ("second header", vec![Header { seq: 0 }], Err(())),
        ];
        for (name, records, want) in cases {
            let mut replay = Replay::new();
            let got = records
                .into_iter()
                .try_for_each(|r| replay.apply(r))
                .and_then(|()| replay.finish())
                .map(|rec| points(&rec.entries))
                .map_err(|_| ());
            assert_eq!(got, want, "{name}");
        }
    }

    /// An operation of the random test.
    #[derive(Clone, Debug)]
    enum Op {
        Append {
            back: u64,
            count: u64,
            new_term: bool,
            big: bool,
        },
        HardState(u64),
        Sync,
        Compact(u64),
        Install(u64),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0u64..4, 1u64..6, any::<bool>(), any::<bool>()).prop_map(
                |(back, count, new_term, big)| Op::Append { back, count, new_term, big }
            ),
            1 => (0u64..4).prop_map(Op::HardState),
            3 => Just(Op::Sync),
            1 => (0u64..256).prop_map(Op::Compact),
            1 => (0u64..4).prop_map(Op::Install),
            1 => Just(Op::Reopen),
        ]
    }

    /// The log as a plain vector.
    #[derive(Clone, Debug, Default)]
    struct Model {
        snapshot: (u64, u64),
        entries: Vec<Entry>,
        hard_state: HardState,
    }

    impl Model {
        fn last(&self) -> u64 {
            self.snapshot.0 + self.entries.len() as u64
        }

        fn term(&self, index: u64) -> u64 {
            if index == self.snapshot.0 {
                return self.snapshot.1;
            }
            self.entries[(index - self.snapshot.0 - 1) as usize].term
        }

        fn check(&self, rec: &Recovered) -> Result<(), TestCaseError> {
            prop_assert_eq!((rec.snapshot_index, rec.snapshot_term), self.snapshot);
            prop_assert_eq!(&rec.entries, &self.entries);
            prop_assert_eq!(&rec.hard_state, &self.hard_state);
            Ok(())
        }
    }

    fn run_ops(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let dir = TempDir::new().unwrap();
        let segment_size = 300;
        let (mut wal, _) = open(dir.path(), segment_size);
        let (mut live, mut durable) = (Model::default(), Model::default());
        let mut max_term = 1;
        for op in ops {
            match op {
                Op::Append {
                    back,
                    count,
                    new_term,
                    big,
                } => {
                    let first = (live.last() + 1)
                        .saturating_sub(back)
                        .max(live.snapshot.0 + 1);
                    if new_term {
                        max_term += 1;
                    }
                    let batch: Vec<Entry> = (first..first + count)
                        .map(|i| {
                            let mut e = entry(i, max_term);
                            if big {
                                e.data = vec![i as u8; 200];
                            }
                            e
                        })
                        .collect();
                    wal.append_entries(&batch).unwrap();
                    live.entries
                        .truncate((first - live.snapshot.0 - 1) as usize);
                    live.entries.extend(batch);
                }
                Op::HardState(vote) => {
                    live.hard_state = hard(max_term, vote, live.last());
                    wal.set_hard_state(&live.hard_state).unwrap();
                }
                Op::Sync => {
                    wal.sync().unwrap();
                    durable = live.clone();
                }
                Op::Compact(at) => {
                    if live.last() > live.snapshot.0 {
                        let span = live.last() - live.snapshot.0 - 1;
                        let index = live.snapshot.0 + 1 + at * span / 255;
                        let term = live.term(index);
                        wal.compact(index, term).unwrap();
                        live.entries.drain(..(index - live.snapshot.0) as usize);
                        live.snapshot = (index, term);
                        durable = live.clone();
                    }
                }
                Op::Install(ahead) => {
                    max_term += 1;
                    let index = (live.last() + ahead).max(live.snapshot.0 + 1);
                    wal.apply_snapshot(index, max_term).unwrap();
                    live.entries.clear();
                    live.snapshot = (index, max_term);
                    durable = live.clone();
                }
                Op::Reopen => {
                    drop(wal);
                    let (reopened, rec) = open(dir.path(), segment_size);
                    wal = reopened;
                    durable.check(&rec)?;
                    live = durable.clone();
                }
            }
            prop_assert_eq!(wal.last_index(), live.last());
            prop_assert_eq!(wal.snapshot_index(), live.snapshot.0);
            // Covered segments are gone after every compaction, and the
            // files on disk are the ones the log knows.
            let known: Vec<PathBuf> = wal.segments.iter().map(|s| s.path.clone()).collect();
            prop_assert_eq!(segment_files(dir.path()), known);
        }
        drop(wal);
        let (_, rec) = open(dir.path(), segment_size);
        durable.check(&rec)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn random_operations_match_the_model(ops in proptest::collection::vec(op(), 1..60)) {
            run_ops(ops)?;
        }
    }

    const CHILD_ENV: &str = "WASMK_WAL_KILL9_CHILD_DIR";

    fn child_entry(index: u64) -> Entry {
        Entry {
            index,
            term: 1,
            data: format!("synced entry {index}")
                .repeat(1 + (index % 7) as usize)
                .into_bytes(),
            ..Default::default()
        }
    }

    /// Appends and syncs batches forever (bounded by time), printing the last
    /// index of each synced batch; the parent kills it with SIGKILL.
    fn kill9_child(dir: &Path) -> ! {
        let run = || -> Result<(), WalError> {
            let (mut wal, _) = Wal::open(dir, opts(16 * 1024))?;
            let mut out = io::stdout().lock();
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut next = wal.last_index() + 1;
            while Instant::now() < deadline {
                let count = 1 + next % 17;
                let batch: Vec<Entry> = (next..next + count).map(child_entry).collect();
                let last = next + count - 1;
                wal.append_entries(&batch)?;
                wal.set_hard_state(&hard(1, 1, last))?;
                wal.sync()?;
                if writeln!(out, "synced {last}")
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return Ok(());
                }
                if last / 300 != (next - 1) / 300 {
                    wal.compact(last - 100, 1)?;
                }
                next = last + 1;
            }
            Ok(())
        };
        match run() {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("child failed: {e}");
                std::process::exit(1)
            }
        }
    }

    #[test]
    fn kill_9_loses_no_synced_entry() {
        if let Some(dir) = std::env::var_os(CHILD_ENV) {
            kill9_child(Path::new(&dir));
        }
        let test_name = concat!(module_path!(), "::kill_9_loses_no_synced_entry")
            .split_once("::")
            .map(|(_, rest)| rest)
            .unwrap();
        for round in 0..3 {
            let dir = TempDir::new().unwrap();
            let kill_after = rand::random_range(1..250);
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = mpsc::channel();
            let reader = std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(n) = line
                        .strip_prefix("synced ")
                        .and_then(|n| n.parse::<u64>().ok())
                        && tx.send(n).is_err()
                    {
                        break;
                    }
                }
            });
            let mut synced = 0;
            for _ in 0..kill_after {
                match rx.recv_timeout(Duration::from_secs(20)) {
                    Ok(n) => synced = synced.max(n),
                    Err(e) => {
                        let _ = child.kill();
                        let output = child.wait_with_output().unwrap();
                        panic!(
                            "round {round}: child stopped reporting ({e}): {}",
                            String::from_utf8_lossy(&output.stderr)
                        );
                    }
                }
            }
            child.kill().unwrap();
            child.wait().unwrap();
            reader.join().unwrap();
            // Lines printed before the kill were synced too.
            synced = rx.try_iter().fold(synced, u64::max);

            let (wal, rec) = open(dir.path(), 16 * 1024);
            assert!(
                wal.last_index() >= synced,
                "round {round}: child synced {synced}, recovered up to {}",
                wal.last_index()
            );
            assert!(rec.hard_state.commit >= synced, "round {round}");
            assert!(rec.hard_state.commit <= wal.last_index(), "round {round}");
            assert!(rec.snapshot_index > 0 || synced < 300, "round {round}");
            for (e, index) in rec.entries.iter().zip(rec.snapshot_index + 1..) {
                assert_eq!(e, &child_entry(index), "round {round}");
            }
        }
    }
}
