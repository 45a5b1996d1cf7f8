//! Snapshot files of the Raft store: `DIR/snap/{term:016x}-{index:016x}.snap`.
//!
//! ```text
//! offset 0     [8]  magic "wasmksnp"
//! offset 8     u32  LE format version (1)
//! offset 12    u32  LE metadata length M
//! offset 16    u64  LE data length D
//! offset 24    [M]  prost eraftpb::SnapshotMetadata
//! offset 24+M  [D]  data (the state machine's image)
//! end          u32  LE CRC-32 (IEEE) of every byte before it
//! ```
//!
//! [`save`] writes `NAME.tmp`, fsyncs it, renames it into place and fsyncs
//! the directory, so a crash leaves either the whole snapshot or none of it
//! (plus a stray temp file that [`prune`] removes). [`load_latest`] verifies
//! the checksum and, when the newest file is damaged, logs it and falls back
//! to the next older one. The data is written straight from the caller's
//! buffer and read into a single buffer: no second copy of a large image.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use raft::eraftpb::SnapshotMetadata;

const MAGIC: &[u8; 8] = b"wasmksnp";
const VERSION: u32 = 1;
const HEADER: usize = 24;
const TRAILER: usize = 4;
const TMP_SUFFIX: &str = ".tmp";

/// Errors of snapshot files.
#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    /// A file system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not an intact snapshot.
    #[error("corrupt snapshot file {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// The encoded metadata does not fit its 32-bit length field.
    #[error("snapshot metadata of {len} bytes is too large")]
    MetadataTooLarge { len: usize },
    /// Snapshot files exist but none of them is intact.
    #[error("none of the {count} snapshot files in {} is intact", dir.display())]
    NoValidSnapshot { dir: PathBuf, count: usize },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapError + 'a {
    move |source| SnapError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A snapshot file as its name describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapFile {
    /// `DIR/snap/{term:016x}-{index:016x}.snap`.
    pub path: PathBuf,
    /// Term of the last entry the snapshot covers.
    pub term: u64,
    /// Index of the last entry the snapshot covers.
    pub index: u64,
}

/// The snapshot directory under the data directory `dir`.
pub fn snap_dir(dir: &Path) -> PathBuf {
    dir.join("snap")
}

fn file_name(term: u64, index: u64) -> String {
    format!("{term:016x}-{index:016x}.snap")
}

/// `(term, index)` from a snapshot file name.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let (term, index) = name.strip_suffix(".snap")?.split_once('-')?;
    if term.len() != 16 || index.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(term, 16).ok()?,
        u64::from_str_radix(index, 16).ok()?,
    ))
}

fn sync_dir(path: &Path) -> Result<(), SnapError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", path))
}

/// Writes a snapshot of `data` taken at `meta` (its index, term and conf
/// state) durably, replacing a file for the same point. Returns its path.
pub fn save(dir: &Path, meta: &SnapshotMetadata, data: &[u8]) -> Result<PathBuf, SnapError> {
    let sdir = snap_dir(dir);
    let existed = sdir.is_dir();
    fs::create_dir_all(&sdir).map_err(io_err("create directory", &sdir))?;
    if !existed {
        sync_dir(dir)?;
    }
    let name = file_name(meta.term, meta.index);
    let path = sdir.join(&name);
    let tmp = sdir.join(format!("{name}{TMP_SUFFIX}"));

    let meta_bytes = meta.encode_to_vec();
    let meta_len = u32::try_from(meta_bytes.len()).map_err(|_| SnapError::MetadataTooLarge {
        len: meta_bytes.len(),
    })?;
    let mut head = Vec::with_capacity(HEADER + meta_bytes.len());
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&VERSION.to_le_bytes());
    head.extend_from_slice(&meta_len.to_le_bytes());
    head.extend_from_slice(&(data.len() as u64).to_le_bytes());
    head.extend_from_slice(&meta_bytes);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    crc.update(data);
    let crc = crc.finalize();

    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(&head).map_err(io_err("write", &tmp))?;
        f.write_all(data).map_err(io_err("write", &tmp))?;
        f.write_all(&crc.to_le_bytes())
            .map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename into place", &path))
    })();
    if let Err(e) = written {
        // Best effort: the temp file is garbage either way and prune removes it.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&sdir)?;
    Ok(path)
}

/// The snapshot files in `dir/snap`, newest (highest index, then term) first.
/// Temp files and foreign names are not listed.
pub fn list(dir: &Path) -> Result<Vec<SnapFile>, SnapError> {
    let sdir = snap_dir(dir);
    let mut found = Vec::new();
    let entries = match fs::read_dir(&sdir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io_err("read directory", &sdir)(e)),
    };
    for dirent in entries {
        let dirent = dirent.map_err(io_err("read directory", &sdir))?;
        let name = dirent.file_name();
        if let Some((term, index)) = name.to_str().and_then(parse_name) {
            found.push(SnapFile {
                path: dirent.path(),
                term,
                index,
            });
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse((f.index, f.term)));
    Ok(found)
}

/// Reads and verifies one snapshot file.
pub fn load(file: &SnapFile) -> Result<(SnapshotMetadata, Vec<u8>), SnapError> {
    let path = &file.path;
    let corrupt = |reason: String| SnapError::Corrupt {
        path: path.clone(),
        reason,
    };
    let mut f = File::open(path).map_err(io_err("open", path))?;
    let size = f.metadata().map_err(io_err("stat", path))?.len();
    let mut head = [0u8; HEADER];
    if size < (HEADER + TRAILER) as u64 {
        return Err(corrupt(format!("only {size} bytes long")));
    }
    f.read_exact(&mut head).map_err(io_err("read", path))?;
    if &head[..8] != MAGIC {
        return Err(corrupt("not a wasmk snapshot file".into()));
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version != VERSION {
        return Err(corrupt(format!("unsupported snapshot version {version}")));
    }
    let meta_len = u64::from(u32::from_le_bytes([head[12], head[13], head[14], head[15]]));
    let mut d = [0u8; 8];
    d.copy_from_slice(&head[16..24]);
    let data_len = u64::from_le_bytes(d);
    let expected = meta_len
        .checked_add(data_len)
        .and_then(|n| n.checked_add((HEADER + TRAILER) as u64));
    if expected != Some(size) {
        return Err(corrupt(format!(
            "file is {size} bytes but its header announces {meta_len} bytes of metadata and {data_len} of data"
        )));
    }
    // Both lengths are bounded by the file size checked above.
    let mut meta_bytes = vec![0u8; meta_len as usize];
    f.read_exact(&mut meta_bytes)
        .map_err(io_err("read", path))?;
    let mut data = vec![0u8; data_len as usize];
    f.read_exact(&mut data).map_err(io_err("read", path))?;
    let mut trailer = [0u8; TRAILER];
    f.read_exact(&mut trailer).map_err(io_err("read", path))?;

    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    crc.update(&meta_bytes);
    crc.update(&data);
    if crc.finalize() != u32::from_le_bytes(trailer) {
        return Err(corrupt("checksum mismatch".into()));
    }
    let meta = SnapshotMetadata::decode(meta_bytes.as_slice())
        .map_err(|e| corrupt(format!("undecodable metadata: {e}")))?;
    if meta.index != file.index || meta.term != file.term {
        return Err(corrupt(format!(
            "metadata says index {} term {}, the file name index {} term {}",
            meta.index, meta.term, file.index, file.term
        )));
    }
    Ok((meta, data))
}

/// The newest intact snapshot in `dir/snap`, skipping (and logging) damaged
/// newer ones. `None` when there is no snapshot file at all; an error when
/// there are some but none is intact.
///
/// The caller must still check that the result is not older than the WAL's
/// snapshot point: falling back past it would lose the entries in between.
pub fn load_latest(dir: &Path) -> Result<Option<(SnapshotMetadata, Vec<u8>)>, SnapError> {
    let files = list(dir)?;
    for file in &files {
        match load(file) {
            Ok(found) => return Ok(Some(found)),
            Err(error) => tracing::warn!(
                file = %file.path.display(),
                %error,
                "skipping a snapshot file that cannot be loaded"
            ),
        }
    }
    if files.is_empty() {
        Ok(None)
    } else {
        Err(SnapError::NoValidSnapshot {
            dir: snap_dir(dir),
            count: files.len(),
        })
    }
}

/// Removes all but the `keep` newest snapshot files (at least one is always
/// kept; keep 2 or more to have a fallback) and any leftover temp files.
/// Returns how many files were removed.
pub fn prune(dir: &Path, keep: usize) -> Result<usize, SnapError> {
    let sdir = snap_dir(dir);
    let mut doomed: Vec<PathBuf> = list(dir)?
        .into_iter()
        .skip(keep.max(1))
        .map(|f| f.path)
        .collect();
    if let Ok(entries) = fs::read_dir(&sdir) {
        for dirent in entries {
            let dirent = dirent.map_err(io_err("read directory", &sdir))?;
            let name = dirent.file_name();
            let is_tmp = name
                .to_str()
                .and_then(|n| n.strip_suffix(TMP_SUFFIX))
                .is_some_and(|n| parse_name(n).is_some());
            if is_tmp {
                doomed.push(dirent.path());
            }
        }
    }
    for path in &doomed {
        fs::remove_file(path).map_err(io_err("remove", path))?;
    }
    if !doomed.is_empty() {
        sync_dir(&sdir)?;
    }
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    use raft::eraftpb::ConfState;
    use tempfile::TempDir;

    fn meta(index: u64, term: u64) -> SnapshotMetadata {
        SnapshotMetadata {
            index,
            term,
            conf_state: Some(ConfState {
                voters: vec![1, 2, 3],
                learners: vec![4],
                ..Default::default()
            }),
        }
    }

    /// Data that differs at every offset, so a misplaced byte shows.
    fn image(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    fn flip(path: &Path, at_from_end: usize) {
        let mut bytes = fs::read(path).unwrap();
        let at = bytes.len() - at_from_end;
        bytes[at] ^= 0x20;
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn round_trip_of_a_large_image() {
        let dir = TempDir::new().unwrap();
        let data = image(24 << 20, 7);
        let path = save(dir.path(), &meta(1234, 5), &data).unwrap();
        assert_eq!(
            path,
            dir.path()
                .join("snap/0000000000000005-00000000000004d2.snap")
        );
        let (m, d) = load_latest(dir.path()).unwrap().unwrap();
        assert_eq!(m, meta(1234, 5));
        assert!(d == data, "data differs");
        // Nothing but the snapshot is left behind.
        let names: Vec<_> = fs::read_dir(snap_dir(dir.path())).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn empty_directory_has_no_snapshot() {
        let dir = TempDir::new().unwrap();
        assert!(load_latest(dir.path()).unwrap().is_none());
        fs::create_dir_all(snap_dir(dir.path())).unwrap();
        assert!(load_latest(dir.path()).unwrap().is_none());
    }

    #[test]
    fn newest_intact_snapshot_wins() {
        let dir = TempDir::new().unwrap();
        save(dir.path(), &meta(10, 1), &image(1000, 1)).unwrap();
        save(dir.path(), &meta(30, 2), &image(3000, 3)).unwrap();
        save(dir.path(), &meta(20, 2), &image(2000, 2)).unwrap();
        let (m, d) = load_latest(dir.path()).unwrap().unwrap();
        assert_eq!((m.index, d), (30, image(3000, 3)));
        let order: Vec<u64> = list(dir.path()).unwrap().iter().map(|f| f.index).collect();
        assert_eq!(order, vec![30, 20, 10]);
    }

    #[test]
    fn damaged_newest_falls_back_to_an_older_one() {
        type Damage = (&'static str, fn(&Path));
        let damages: [Damage; 5] = [
            ("flipped data byte", |p| flip(p, 100)),
            ("flipped checksum", |p| flip(p, 1)),
            ("flipped header", |p| {
                let mut b = fs::read(p).unwrap();
                b[3] ^= 1;
                fs::write(p, b).unwrap();
            }),
            ("truncated", |p| {
                let b = fs::read(p).unwrap();
                fs::write(p, &b[..b.len() / 2]).unwrap();
            }),
            ("empty", |p| fs::write(p, b"").unwrap()),
        ];
        for (name, damage) in damages {
            let dir = TempDir::new().unwrap();
            save(dir.path(), &meta(10, 1), &image(5000, 1)).unwrap();
            let newest = save(dir.path(), &meta(20, 1), &image(5000, 2)).unwrap();
            damage(&newest);
            let (m, d) = load_latest(dir.path()).unwrap().unwrap();
            assert_eq!((m.index, d), (10, image(5000, 1)), "{name}");
            let err = load(&list(dir.path()).unwrap()[0]).unwrap_err();
            assert!(matches!(err, SnapError::Corrupt { .. }), "{name}: {err}");
            assert!(err.to_string().contains(newest.to_str().unwrap()), "{name}");
        }
    }

    #[test]
    fn renamed_file_is_not_trusted() {
        let dir = TempDir::new().unwrap();
        let path = save(dir.path(), &meta(10, 1), b"abc").unwrap();
        let moved = snap_dir(dir.path()).join(file_name(1, 11));
        fs::rename(&path, &moved).unwrap();
        let err = load_latest(dir.path()).unwrap_err();
        assert!(
            matches!(err, SnapError::NoValidSnapshot { count: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn all_damaged_is_an_error() {
        let dir = TempDir::new().unwrap();
        for i in 1..=2 {
            let path = save(dir.path(), &meta(i, 1), &image(100, i as u8)).unwrap();
            flip(&path, 10);
        }
        let err = load_latest(dir.path()).unwrap_err();
        assert!(
            matches!(err, SnapError::NoValidSnapshot { count: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn prune_keeps_the_newest_and_removes_temp_files() {
        let dir = TempDir::new().unwrap();
        for i in 1..=5 {
            save(dir.path(), &meta(i * 10, 1), &image(64, i as u8)).unwrap();
        }
        // A temp file left by a crash during save, and a file that is not ours.
        let sdir = snap_dir(dir.path());
        fs::write(sdir.join(format!("{}.tmp", file_name(1, 60))), b"partial").unwrap();
        fs::write(sdir.join("notes.txt"), b"keep me").unwrap();
        assert_eq!(prune(dir.path(), 2).unwrap(), 4);
        let left: Vec<u64> = list(dir.path()).unwrap().iter().map(|f| f.index).collect();
        assert_eq!(left, vec![50, 40]);
        assert!(sdir.join("notes.txt").exists());
        // At least one snapshot always stays.
        assert_eq!(prune(dir.path(), 0).unwrap(), 1);
        assert_eq!(load_latest(dir.path()).unwrap().unwrap().0.index, 50);
    }

    #[test]
    fn saving_the_same_point_again_replaces_it() {
        let dir = TempDir::new().unwrap();
        save(dir.path(), &meta(10, 1), b"first").unwrap();
        save(dir.path(), &meta(10, 1), b"second").unwrap();
        assert_eq!(list(dir.path()).unwrap().len(), 1);
        assert_eq!(load_latest(dir.path()).unwrap().unwrap().1, b"second");
    }
}
