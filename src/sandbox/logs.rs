//! Container logs in the CRI format kubelet reads, with size-based rotation,
//! and the readers the logs endpoint uses.
//!
//! Each record is one line: `<RFC 3339 UTC, 9 fraction digits> <stream>
//! <tag> <content>\n`, where `stream` is `stdout` or `stderr` and `tag` is
//! `F` for a full line or `P` for a piece of a line longer than
//! [`MAX_LINE_BYTES`] (the rest follows in later records). The writer rotates
//! `log` to `log.1` (and `log.1` to `log.2`, ...) before the file would pass
//! its size limit and deletes files beyond the count limit, so a module that
//! floods its output uses at most `max_bytes * max_files` of disk (plus one
//! record).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};

use super::spec::LogRotation;

/// Longest content of one record; longer lines are split into `P` records
/// (containerd uses the same 16 KiB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Errors writing or reading container logs.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open log file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write log file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot rotate log file {path}: {source}")]
    Rotate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read log file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Which output stream a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One parsed log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub timestamp: DateTime<Utc>,
    pub stream: LogStream,
    /// True for a `P` record: the line continues in the next record.
    pub partial: bool,
    /// The content, without the trailing newline.
    pub content: Vec<u8>,
}

/// Formats one record, newline included.
pub fn format_record(
    timestamp: DateTime<Utc>,
    stream: LogStream,
    partial: bool,
    content: &[u8],
) -> Vec<u8> {
    let ts = timestamp.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let mut out = Vec::with_capacity(ts.len() + content.len() + 12);
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// Parses one record line (without its newline); `None` if malformed.
pub fn parse_record(line: &[u8]) -> Option<LogRecord> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let timestamp = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
    let stream = match parts.next()? {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let content = parts.next().unwrap_or_default().to_vec();
    Some(LogRecord {
        timestamp,
        stream,
        partial,
        content,
    })
}

/// Splits output into record contents: each complete line is `(false, line)`;
/// a pending line reaching `max_line` bytes is emitted as `(true, piece)`.
/// Bytes after the last newline stay in `pending`.
pub fn split_output(pending: &mut Vec<u8>, input: &[u8], max_line: usize) -> Vec<(bool, Vec<u8>)> {
    let max_line = max_line.max(1);
    let mut out = Vec::new();
    for &b in input {
        if b == b'\n' {
            out.push((false, std::mem::take(pending)));
            continue;
        }
        pending.push(b);
        if pending.len() >= max_line {
            out.push((true, std::mem::take(pending)));
        }
    }
    out
}

/// Writes CRI records to a log file and rotates it by size.
pub struct CriLogWriter {
    path: PathBuf,
    rotation: LogRotation,
    file: File,
    /// Bytes in the current file.
    size: u64,
    /// Incomplete last line per stream (stdout, stderr).
    pending: [Vec<u8>; 2],
}

impl CriLogWriter {
    /// Opens `path` for appending (creating it), continuing its size count.
    pub fn open(path: &Path, rotation: LogRotation) -> Result<CriLogWriter, LogError> {
        let file = open_append(path)?;
        let size = file
            .metadata()
            .map_err(|source| LogError::Open {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        Ok(CriLogWriter {
            path: path.to_path_buf(),
            rotation: LogRotation {
                max_bytes: rotation.max_bytes.max(1),
                max_files: rotation.max_files.max(1),
            },
            file,
            size,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Adds output of `stream`; complete lines are written at once.
    pub fn write(&mut self, stream: LogStream, bytes: &[u8]) -> Result<(), LogError> {
        let pieces = split_output(&mut self.pending[stream as usize], bytes, MAX_LINE_BYTES);
        let now = Utc::now();
        for (partial, content) in pieces {
            self.write_record(&format_record(now, stream, partial, &content))?;
        }
        Ok(())
    }

    /// Writes out incomplete lines as full records (at exit: a module's last
    /// line need not end in a newline).
    pub fn flush_pending(&mut self) -> Result<(), LogError> {
        let now = Utc::now();
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let content = std::mem::take(&mut self.pending[stream as usize]);
            if !content.is_empty() {
                self.write_record(&format_record(now, stream, false, &content))?;
            }
        }
        Ok(())
    }

    fn write_record(&mut self, record: &[u8]) -> Result<(), LogError> {
        if self.size > 0 && self.size + record.len() as u64 > self.rotation.max_bytes {
            self.rotate()?;
        }
        // One write per record: a concurrent reader sees whole records or
        // an unfinished tail it waits on, never interleaved pieces.
        self.file
            .write_all(record)
            .map_err(|source| LogError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.size += record.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LogError::Rotate { path, source }
        };
        let keep = self.rotation.max_files - 1;
        if keep == 0 {
            std::fs::remove_file(&self.path)
                .or_else(ignore_missing)
                .map_err(err(&self.path))?;
        } else {
            let oldest = rotated_path(&self.path, keep);
            std::fs::remove_file(&oldest)
                .or_else(ignore_missing)
                .map_err(err(&oldest))?;
            for i in (1..keep).rev() {
                let from = rotated_path(&self.path, i);
                std::fs::rename(&from, rotated_path(&self.path, i + 1))
                    .or_else(ignore_missing)
                    .map_err(err(&from))?;
            }
            std::fs::rename(&self.path, rotated_path(&self.path, 1)).map_err(err(&self.path))?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn open_append(path: &Path) -> Result<File, LogError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// `log.N`.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The log files of one container, oldest first (`log.N`, ..., `log.1`,
/// `log`); files that do not exist are left out.
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut n = 1;
    while rotated_path(path, n).exists() {
        files.push(rotated_path(path, n));
        n += 1;
    }
    files.reverse();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// What `kubectl logs` asks for (`PodLogOptions`). Which container instance
/// (`previous`) is the caller's choice of `path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last N lines (`tailLines`); a line split into `P` records
    /// counts once.
    pub tail_lines: Option<u64>,
    /// Only lines logged at or after this time (`sinceTime`/`sinceSeconds`).
    pub since: Option<DateTime<Utc>>,
    /// Prefix each line with its RFC 3339 timestamp (`timestamps`).
    pub timestamps: bool,
    /// Stop after this many bytes of output (`limitBytes`).
    pub limit_bytes: Option<u64>,
}

/// A whole line assembled from one or more records.
struct Line {
    timestamp: DateTime<Utc>,
    content: Vec<u8>,
    complete: bool,
}

/// Collects records into lines per stream, so a stderr line cannot glue
/// itself onto an unfinished stdout line.
#[derive(Default)]
struct LineAssembler {
    open: [Option<Line>; 2],
}

impl LineAssembler {
    fn push(&mut self, record: LogRecord) -> Option<Line> {
        let slot = &mut self.open[record.stream as usize];
        let line = slot.get_or_insert_with(|| Line {
            timestamp: record.timestamp,
            content: Vec::new(),
            complete: false,
        });
        line.content.extend_from_slice(&record.content);
        if record.partial {
            return None;
        }
        let mut line = slot.take()?;
        line.complete = true;
        Some(line)
    }
}

fn render(line: &Line, opts: &LogOptions, out: &mut Vec<u8>) {
    if opts.timestamps {
        out.extend_from_slice(
            line.timestamp
                .to_rfc3339_opts(SecondsFormat::Nanos, true)
                .as_bytes(),
        );
        out.push(b' ');
    }
    out.extend_from_slice(&line.content);
    if line.complete {
        out.push(b'\n');
    }
}

/// Output budget for `limit_bytes`.
struct Budget(Option<u64>);

impl Budget {
    /// Appends as much of `bytes` as the budget allows.
    fn take(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        match &mut self.0 {
            None => out.extend_from_slice(bytes),
            Some(left) => {
                let n = (*left).min(bytes.len() as u64) as usize;
                out.extend_from_slice(&bytes[..n]);
                *left -= n as u64;
            }
        }
    }
    fn exhausted(&self) -> bool {
        self.0 == Some(0)
    }
}

/// Reads the container's log (all rotated files, oldest first) as `kubectl
/// logs` shows it: the content of each line, optionally timestamped.
/// Malformed lines are skipped.
pub fn read_logs(path: &Path, opts: &LogOptions) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::new();
    let mut budget = Budget(opts.limit_bytes);
    let mut lines = Collector::new(opts);
    for file in log_files(path) {
        let f = match File::open(&file) {
            Ok(f) => f,
            // Rotated away between listing and opening.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(LogError::Read { path: file, source }),
        };
        read_records(BufReader::new(f), &file, |r| lines.push(r))?;
    }
    lines.finish(&mut out, &mut budget);
    Ok(out)
}

/// Applies `since` and `tail_lines` while records stream in.
struct Collector<'a> {
    opts: &'a LogOptions,
    assembler: LineAssembler,
    lines: VecDeque<Line>,
}

impl<'a> Collector<'a> {
    fn new(opts: &'a LogOptions) -> Self {
        Collector {
            opts,
            assembler: LineAssembler::default(),
            lines: VecDeque::new(),
        }
    }

    fn push(&mut self, record: LogRecord) {
        let Some(line) = self.assembler.push(record) else {
            return;
        };
        if self.opts.since.is_some_and(|since| line.timestamp < since) {
            return;
        }
        self.lines.push_back(line);
        if let Some(tail) = self.opts.tail_lines {
            while self.lines.len() as u64 > tail {
                self.lines.pop_front();
            }
        }
    }

    fn finish(self, out: &mut Vec<u8>, budget: &mut Budget) {
        let mut rendered = Vec::new();
        for line in &self.lines {
            if budget.exhausted() {
                break;
            }
            rendered.clear();
            render(line, self.opts, &mut rendered);
            budget.take(&rendered, out);
        }
    }
}

/// Calls `f` for every complete, well-formed record in `reader`; returns the
/// bytes consumed (an unterminated last line is not consumed).
fn read_records(
    mut reader: impl BufRead,
    path: &Path,
    mut f: impl FnMut(LogRecord),
) -> Result<u64, LogError> {
    let mut consumed = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| LogError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(consumed);
        }
        consumed += n as u64;
        if let Some(record) = parse_record(&line[..line.len() - 1]) {
            f(record);
        }
    }
}

/// Follows a container log across rotations (`kubectl logs -f`). Poll it
/// periodically; each poll returns the output that appeared since the last.
pub struct LogFollower {
    path: PathBuf,
    opts: LogOptions,
    /// The file being read and its inode; `None` until the log exists.
    file: Option<(File, u64)>,
    /// Offset of the first byte not yet consumed in `file`.
    offset: u64,
    assembler: LineAssembler,
    budget: Budget,
    /// Output of the first poll: the history chosen by `opts`.
    initial: Option<Vec<u8>>,
}

impl LogFollower {
    /// Starts following `path`. The first [`LogFollower::poll`] returns the
    /// existing log filtered by `opts` (tail, since); later polls return new
    /// lines. `limit_bytes` bounds the whole stream.
    pub fn new(path: &Path, opts: LogOptions) -> Result<LogFollower, LogError> {
        let mut budget = Budget(opts.limit_bytes);
        let mut collector = Collector::new(&opts);
        // Open the current file first, so nothing written after the history
        // is read can be missed: the history ends where this handle starts.
        let current = open_with_inode(path)?;
        for file in log_files(path) {
            if file == path {
                continue;
            }
            if let Ok(f) = File::open(&file) {
                read_records(BufReader::new(f), &file, |r| collector.push(r))?;
            }
        }
        let mut offset = 0;
        if let Some((f, _)) = &current {
            offset = read_records(BufReader::new(f), path, |r| collector.push(r))?;
        }
        let assembler = std::mem::take(&mut collector.assembler);
        let mut initial = Vec::new();
        collector.finish(&mut initial, &mut budget);
        Ok(LogFollower {
            path: path.to_path_buf(),
            opts,
            file: current,
            offset,
            assembler,
            budget,
            initial: Some(initial),
        })
    }

    /// Returns new output (possibly empty). Never blocks on the writer.
    ///
    /// Rotations since the last poll are followed by inode: the rest of the
    /// file that was open, then every newer rotated file, then the current
    /// one. Files rotated past `max_files` before a poll are lost, as with
    /// any reader that is too slow.
    pub fn poll(&mut self) -> Result<Vec<u8>, LogError> {
        let mut out = self.initial.take().unwrap_or_default();
        self.drain_open_file(&mut out)?;
        // A few rounds at most, in case the writer rotates while we read.
        for _ in 0..4 {
            if self.budget.exhausted() {
                break;
            }
            let Some((current, ino)) = open_with_inode(&self.path)? else {
                break;
            };
            if matches!(&self.file, Some((_, open)) if *open == ino) {
                break;
            }
            let rotated: Vec<PathBuf> = log_files(&self.path)
                .into_iter()
                .filter(|f| *f != self.path)
                .collect();
            // Files newer than the one we had open; all of them if it is
            // gone (it was the oldest) or if there was none.
            let newer_from = match &self.file {
                Some((_, open)) => rotated
                    .iter()
                    .position(|f| std::fs::metadata(f).is_ok_and(|m| m.ino() == *open))
                    .map_or(0, |i| i + 1),
                None => 0,
            };
            for path in &rotated[newer_from..] {
                if let Ok(f) = File::open(path) {
                    let mut records = Vec::new();
                    read_records(BufReader::new(f), path, |r| records.push(r))?;
                    self.render_records(records, &mut out);
                }
            }
            self.file = Some((current, ino));
            self.offset = 0;
            self.drain_open_file(&mut out)?;
        }
        Ok(out)
    }

    fn drain_open_file(&mut self, out: &mut Vec<u8>) -> Result<(), LogError> {
        let Some((file, _)) = &mut self.file else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(self.offset))
            .map_err(|source| LogError::Read {
                path: self.path.clone(),
                source,
            })?;
        let mut records = Vec::new();
        let n = read_records(BufReader::new(&mut *file), &self.path, |r| records.push(r))?;
        self.offset += n;
        self.render_records(records, out);
        Ok(())
    }

    fn render_records(&mut self, records: Vec<LogRecord>, out: &mut Vec<u8>) {
        let mut rendered = Vec::new();
        for r in records {
            if let Some(line) = self.assembler.push(r) {
                rendered.clear();
                render(&line, &self.opts, &mut rendered);
                self.budget.take(&rendered, out);
            }
        }
    }
}

fn open_with_inode(path: &Path) -> Result<Option<(File, u64)>, LogError> {
    let read_err = |source| LogError::Read {
        path: path.to_path_buf(),
        source,
    };
    match File::open(path) {
        Ok(f) => {
            let ino = f.metadata().map_err(read_err)?.ino();
            Ok(Some((f, ino)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_err(e)),
    }
}

/// Reads a whole file into memory; used by tests and small tools.
pub fn read_raw(path: &Path) -> Result<Vec<u8>, LogError> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|source| LogError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ts(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_714_558_830 + secs, 123_456_789)
            .unwrap()
    }

    #[test]
    fn record_format_matches_cri() {
        let line = format_record(ts(0), LogStream::Stdout, false, b"hello world");
        assert_eq!(
            line,
            b"2024-05-01T10:20:30.123456789Z stdout F hello world\n".to_vec()
        );
        let line = format_record(ts(0), LogStream::Stderr, true, b"");
        assert_eq!(line, b"2024-05-01T10:20:30.123456789Z stderr P \n".to_vec());
    }

    #[test]
    fn parse_round_trips_and_rejects_garbage() {
        for (stream, partial, content) in [
            (LogStream::Stdout, false, &b"a b  c"[..]),
            (LogStream::Stderr, true, b""),
            (LogStream::Stdout, false, b"\xff\xfe binary"),
        ] {
            let line = format_record(ts(5), stream, partial, content);
            let r = parse_record(&line[..line.len() - 1]).unwrap();
            assert_eq!(
                r,
                LogRecord {
                    timestamp: ts(5),
                    stream,
                    partial,
                    content: content.to_vec()
                }
            );
        }
        for bad in [
            &b""[..],
            b"garbage",
            b"2024-05-01T10:20:30Z stdin F x",
            b"2024-05-01T10:20:30Z stdout X x",
            b"yesterday stdout F x",
        ] {
            assert_eq!(
                parse_record(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn output_splitting() {
        type Case<'a> = (&'a [&'a [u8]], usize, &'a [(bool, &'a [u8])], &'a [u8]);
        let cases: &[Case] = &[
            (&[b"a\nb\n"], 16, &[(false, b"a"), (false, b"b")], b""),
            (&[b"ab", b"c\nd"], 16, &[(false, b"abc")], b"d"),
            (&[b"\n\n"], 16, &[(false, b""), (false, b"")], b""),
            (
                &[b"abcdefg\n"],
                3,
                &[(true, b"abc"), (true, b"def"), (false, b"g")],
                b"",
            ),
            (&[b"abc\n"], 3, &[(true, b"abc"), (false, b"")], b""),
            (&[b"abcd"], 3, &[(true, b"abc")], b"d"),
        ];
        for (inputs, max, want, rest) in cases {
            let mut pending = Vec::new();
            let mut got = Vec::new();
            for input in *inputs {
                got.extend(split_output(&mut pending, input, *max));
            }
            let want: Vec<(bool, Vec<u8>)> = want.iter().map(|(p, c)| (*p, c.to_vec())).collect();
            assert_eq!(got, want, "{inputs:?}");
            assert_eq!(pending, rest.to_vec(), "{inputs:?}");
        }
    }

    fn write_lines(path: &Path, rotation: LogRotation, lines: &[&str]) {
        let mut w = CriLogWriter::open(path, rotation).unwrap();
        for l in lines {
            w.write(LogStream::Stdout, format!("{l}\n").as_bytes())
                .unwrap();
        }
    }

    #[test]
    fn rotation_bounds_files_and_keeps_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotation = LogRotation {
            max_bytes: 200,
            max_files: 3,
        };
        let lines: Vec<String> = (0..100).map(|i| format!("line {i:03}")).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        write_lines(&path, rotation, &refs);
        let files = log_files(&path);
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(!rotated_path(&path, 3).exists());
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() <= 200, "{f:?}");
        }
        let all = read_logs(&path, &LogOptions::default()).unwrap();
        let text = String::from_utf8(all).unwrap();
        let got: Vec<&str> = text.lines().collect();
        // The newest lines survive, in order and without gaps.
        assert_eq!(got.last(), Some(&"line 099"));
        let first: usize = got[0][5..].parse().unwrap();
        let want: Vec<String> = (first..100).map(|i| format!("line {i:03}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn single_file_rotation_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotation = LogRotation {
            max_bytes: 60,
            max_files: 1,
        };
        write_lines(&path, rotation, &["aaaaaaaaaaaaaaaaaaaa", "bbbb", "cccc"]);
        assert_eq!(log_files(&path), vec![path.clone()]);
        let text = read_logs(&path, &LogOptions::default()).unwrap();
        assert_eq!(text, b"cccc\n");
    }

    fn write_records(path: &Path, records: &[(i64, LogStream, bool, &str)]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for (t, s, p, c) in records {
            f.write_all(&format_record(ts(*t), *s, *p, c.as_bytes()))
                .unwrap();
        }
    }

    #[test]
    fn reader_options() {
        use LogStream::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        write_records(&rotated_path(&path, 2), &[(0, Stdout, false, "zero")]);
        write_records(
            &rotated_path(&path, 1),
            &[(1, Stdout, false, "one"), (2, Stdout, true, "tw")],
        );
        write_records(
            &path,
            &[
                (3, Stderr, false, "err"),
                (3, Stdout, false, "o"),
                (4, Stdout, false, "four"),
            ],
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"not a record\n2024-05-01T10:20:40Z stdout F unterminated")
            .unwrap();
        let read = |opts: LogOptions| String::from_utf8(read_logs(&path, &opts).unwrap()).unwrap();
        let cases: &[(&str, LogOptions, &str)] = &[
            ("all", LogOptions::default(), "zero\none\nerr\ntwo\nfour\n"),
            (
                "tail 2",
                LogOptions {
                    tail_lines: Some(2),
                    ..Default::default()
                },
                "two\nfour\n",
            ),
            (
                "tail 0",
                LogOptions {
                    tail_lines: Some(0),
                    ..Default::default()
                },
                "",
            ),
            (
                "since",
                LogOptions {
                    since: Some(ts(2)),
                    ..Default::default()
                },
                "err\ntwo\nfour\n",
            ),
            (
                "limit",
                LogOptions {
                    limit_bytes: Some(7),
                    ..Default::default()
                },
                "zero\non",
            ),
            (
                "timestamps",
                LogOptions {
                    timestamps: true,
                    tail_lines: Some(1),
                    ..Default::default()
                },
                "2024-05-01T10:20:34.123456789Z four\n",
            ),
        ];
        for (name, opts, want) in cases {
            assert_eq!(read(opts.clone()), *want, "{name}");
        }
    }

    #[test]
    fn follower_sees_new_lines_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotation = LogRotation {
            max_bytes: 120,
            max_files: 4,
        };
        let mut w = CriLogWriter::open(&path, rotation).unwrap();
        w.write(LogStream::Stdout, b"old 1\nold 2\n").unwrap();
        let mut f = LogFollower::new(
            &path,
            LogOptions {
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(f.poll().unwrap(), b"old 2\n");
        assert_eq!(f.poll().unwrap(), b"");
        // Half a line is held back until it is complete.
        w.write(LogStream::Stdout, b"new 1\nnew").unwrap();
        assert_eq!(f.poll().unwrap(), b"new 1\n");
        w.write(LogStream::Stdout, b" 2\n").unwrap();
        // These force at least one rotation (each record is ~40 bytes).
        w.write(LogStream::Stdout, b"new 3\nnew 4\nnew 5\n")
            .unwrap();
        assert!(rotated_path(&path, 1).exists());
        assert_eq!(f.poll().unwrap(), b"new 2\nnew 3\nnew 4\nnew 5\n");
    }

    #[test]
    fn follower_survives_its_file_being_rotated_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotation = LogRotation {
            max_bytes: 50,
            max_files: 3,
        };
        let mut w = CriLogWriter::open(&path, rotation).unwrap();
        w.write(LogStream::Stdout, b"a\n").unwrap();
        let mut f = LogFollower::new(&path, LogOptions::default()).unwrap();
        assert_eq!(f.poll().unwrap(), b"a\n");
        // One record per file: "a" is deleted, and b, c are lost with it
        // (3 files kept); the follower resumes with what is still there.
        for l in [b"b\n", b"c\n", b"d\n", b"e\n", b"f\n"] {
            w.write(LogStream::Stdout, l).unwrap();
        }
        assert_eq!(f.poll().unwrap(), b"d\ne\nf\n");
    }

    #[test]
    fn follower_waits_for_the_log_to_appear_and_honours_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut f = LogFollower::new(
            &path,
            LogOptions {
                limit_bytes: Some(8),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(f.poll().unwrap(), b"");
        let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
        w.write(LogStream::Stderr, b"abcdef\nghijkl\n").unwrap();
        assert_eq!(f.poll().unwrap(), b"abcdef\ng");
        w.write(LogStream::Stderr, b"more\n").unwrap();
        assert_eq!(f.poll().unwrap(), b"");
    }

    #[test]
    fn flush_pending_writes_unterminated_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = CriLogWriter::open(&path, LogRotation::default()).unwrap();
        w.write(LogStream::Stdout, b"no newline").unwrap();
        assert_eq!(read_raw(&path).unwrap(), b"");
        w.flush_pending().unwrap();
        assert_eq!(
            read_logs(&path, &LogOptions::default()).unwrap(),
            b"no newline\n"
        );
    }
}
