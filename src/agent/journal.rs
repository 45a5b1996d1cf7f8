//! The node's checkpoints in one append-only file (`pods.journal` beside
//! `pods/`): which pod each state directory belongs to and the latest run
//! of each container, so a restarted agent re-adopts running sandboxes.
//!
//! One line of JSON per change, appended with a single write. A file per
//! checkpoint cost every start two new inodes, and on ext4 without a
//! journal each inode allocation skips every inode freed in the last
//! minute, so with pods coming and going it was the largest cost of a
//! start. Appends allocate nothing.
//!
//! Reading takes the last record of each pod and container; a line that
//! does not parse (the tail of a write torn by a crash) is skipped with a
//! warning. The file is rewritten from the live state (temp file, then
//! rename) when it is opened and whenever it has grown to several times
//! that state, so it stays proportional to the pods on the node. Like the
//! files before it, it is not fsynced: a killed agent loses nothing (the
//! page cache holds it), and a power loss also ends the sandboxes it
//! describes.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::process::{CheckpointError, ContainerCheckpoint, PodCheckpoint};

/// The journal is rewritten once it is larger than this many times its
/// length after the last rewrite (the live state then), and larger than
/// [`MIN_COMPACT_BYTES`].
const GROWTH: u64 = 4;
const MIN_COMPACT_BYTES: u64 = 256 * 1024;

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "op")]
enum Record {
    /// The pod a state directory belongs to.
    Pod {
        uid: String,
        checkpoint: PodCheckpoint,
    },
    /// A container's latest run.
    Container {
        uid: String,
        name: String,
        checkpoint: ContainerCheckpoint,
    },
    /// The pod's state is gone.
    Forget { uid: String },
}

/// What the journal holds for one pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodState {
    pub pod: Option<PodCheckpoint>,
    pub containers: BTreeMap<String, ContainerCheckpoint>,
}

struct Inner {
    file: File,
    /// Bytes in the file.
    len: u64,
    /// Bytes in the file right after the last rewrite.
    rewritten_len: u64,
    pods: HashMap<String, PodState>,
}

/// The open journal. Cheap to share behind an `Arc`; writers serialize on
/// an internal lock.
pub struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

fn write_err(path: &Path) -> impl Fn(io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn line(record: &Record) -> Vec<u8> {
    // Serializing plain structs of strings and numbers cannot fail.
    let mut bytes = serde_json::to_vec(record).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Applies one record to the state.
fn apply(pods: &mut HashMap<String, PodState>, record: Record) {
    match record {
        Record::Pod { uid, checkpoint } => pods.entry(uid).or_default().pod = Some(checkpoint),
        Record::Container {
            uid,
            name,
            checkpoint,
        } => {
            pods.entry(uid)
                .or_default()
                .containers
                .insert(name, checkpoint);
        }
        Record::Forget { uid } => {
            pods.remove(&uid);
        }
    }
}

/// Parses a journal's text: the last record of each pod and container.
/// Lines that do not parse are skipped and counted.
fn replay(text: &[u8]) -> (HashMap<String, PodState>, usize) {
    let mut pods = HashMap::new();
    let mut bad = 0;
    for l in text.split(|b| *b == b'\n') {
        if l.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(l) {
            Ok(r) => apply(&mut pods, r),
            Err(_) => bad += 1,
        }
    }
    (pods, bad)
}

/// Writes the live state to `path` through a temp file and a rename;
/// returns the open file (positioned at its end) and its length.
fn rewrite(path: &Path, pods: &HashMap<String, PodState>) -> Result<(File, u64), CheckpointError> {
    let err = write_err(path);
    let mut text = Vec::new();
    for (uid, state) in pods {
        if let Some(cp) = &state.pod {
            text.extend(line(&Record::Pod {
                uid: uid.clone(),
                checkpoint: cp.clone(),
            }));
        }
        for (name, cp) in &state.containers {
            text.extend(line(&Record::Container {
                uid: uid.clone(),
                name: name.clone(),
                checkpoint: cp.clone(),
            }));
        }
    }
    let tmp = path.with_extension("journal.tmp");
    std::fs::write(&tmp, &text).map_err(&err)?;
    std::fs::rename(&tmp, path).map_err(&err)?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(&err)?;
    Ok((file, text.len() as u64))
}

impl Journal {
    /// Opens (or creates) the journal at `path` and returns it with the
    /// state it holds.
    pub fn open(path: &Path) -> Result<(Journal, HashMap<String, PodState>), CheckpointError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let (pods, bad) = replay(&text);
        if bad > 0 {
            tracing::warn!(path = %path.display(), lines = bad, "skipped unreadable checkpoint lines (a write torn by a crash)");
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_err(path))?;
        }
        let (file, len) = rewrite(path, &pods)?;
        let journal = Journal {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                file,
                len,
                rewritten_len: len,
                pods: pods.clone(),
            }),
        };
        Ok((journal, pods))
    }

    /// What the journal holds for `uid`.
    pub fn get(&self, uid: &str) -> Option<PodState> {
        self.inner.lock().pods.get(uid).cloned()
    }

    /// Whether the journal holds anything for `uid`.
    pub fn contains(&self, uid: &str) -> bool {
        self.inner.lock().pods.contains_key(uid)
    }

    /// Records the pod a state directory belongs to.
    pub fn put_pod(&self, uid: &str, checkpoint: &PodCheckpoint) -> Result<(), CheckpointError> {
        self.append(Record::Pod {
            uid: uid.to_string(),
            checkpoint: checkpoint.clone(),
        })
    }

    /// Records a container's latest run.
    pub fn put_container(
        &self,
        uid: &str,
        name: &str,
        checkpoint: &ContainerCheckpoint,
    ) -> Result<(), CheckpointError> {
        self.append(Record::Container {
            uid: uid.to_string(),
            name: name.to_string(),
            checkpoint: checkpoint.clone(),
        })
    }

    /// Drops everything recorded for `uid` (its state directory is gone).
    pub fn forget(&self, uid: &str) -> Result<(), CheckpointError> {
        if !self.contains(uid) {
            return Ok(());
        }
        self.append(Record::Forget {
            uid: uid.to_string(),
        })
    }

    fn append(&self, record: Record) -> Result<(), CheckpointError> {
        let bytes = line(&record);
        let mut inner = self.inner.lock();
        // One write of a whole line to a file opened for appending.
        inner
            .file
            .write_all(&bytes)
            .map_err(write_err(&self.path))?;
        inner.len += bytes.len() as u64;
        apply(&mut inner.pods, record);
        if inner.len > MIN_COMPACT_BYTES.max(GROWTH * inner.rewritten_len) {
            self.compact(&mut inner);
        }
        Ok(())
    }

    /// Rewrites the file from the live state. On failure the old file
    /// stays in use (it holds the same state, only longer), and the next
    /// try waits until it has grown as much again.
    fn compact(&self, inner: &mut Inner) {
        match rewrite(&self.path, &inner.pods) {
            Ok((file, len)) => {
                inner.file = file;
                inner.len = len;
                inner.rewritten_len = len;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot compact the checkpoint journal");
                inner.rewritten_len = inner.len;
            }
        }
    }

    /// The file's length now (for tests).
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.inner.lock().len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::process::ProcessIdentity;
    use chrono::{DateTime, Utc};

    fn pod(uid: &str) -> PodCheckpoint {
        PodCheckpoint {
            namespace: "default".into(),
            name: format!("pod-{uid}"),
            uid: uid.into(),
            start_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }
    }

    fn container(attempt: u32) -> ContainerCheckpoint {
        ContainerCheckpoint {
            attempt,
            restart_count: attempt,
            image: "worker:v1".into(),
            image_id: "sha256:abc".into(),
            process: ProcessIdentity {
                pid: 4242,
                start_ticks: 99,
                boot_id: "boot".into(),
            },
            spawned_at: DateTime::from_timestamp(1_700_000_001, 0).unwrap(),
            started_at: None,
            record_path: PathBuf::from("/x/app.0.record.json"),
        }
    }

    #[test]
    fn the_last_record_of_each_pod_and_container_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent/pods.journal");
        let (j, state) = Journal::open(&path).unwrap();
        assert!(state.is_empty());
        j.put_pod("a", &pod("a")).unwrap();
        j.put_container("a", "app", &container(0)).unwrap();
        let mut started = container(0);
        started.started_at = Some(Utc::now());
        j.put_container("a", "app", &started).unwrap();
        j.put_container("a", "side", &container(2)).unwrap();
        j.put_pod("b", &pod("b")).unwrap();
        j.put_container("b", "app", &container(1)).unwrap();
        j.forget("b").unwrap();
        // Forgetting what is not there writes nothing.
        let len = j.len();
        j.forget("zzz").unwrap();
        assert_eq!(j.len(), len);
        drop(j);

        let (j, state) = Journal::open(&path).unwrap();
        assert_eq!(state.len(), 1, "{state:?}");
        let a = &state["a"];
        assert_eq!(a.pod, Some(pod("a")));
        assert_eq!(a.containers["app"], started);
        assert_eq!(a.containers["side"].attempt, 2);
        assert_eq!(j.get("a").as_ref(), Some(a));
        assert_eq!(j.get("b"), None);
        // Reopening rewrote the file from the live state only.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
    }

    #[test]
    fn a_torn_or_corrupt_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pods.journal");
        let (j, _) = Journal::open(&path).unwrap();
        j.put_pod("a", &pod("a")).unwrap();
        j.put_container("a", "app", &container(3)).unwrap();
        drop(j);
        let mut text = std::fs::read(&path).unwrap();
        let whole = text.clone();
        // A line of garbage in the middle and a torn copy of the last
        // record at the end.
        text.extend(b"not json\n");
        text.extend(&whole[..whole.len() / 2]);
        std::fs::write(&path, &text).unwrap();
        let (j, state) = Journal::open(&path).unwrap();
        assert_eq!(state["a"].containers["app"].attempt, 3);
        // The rewrite dropped the damage: appends continue on a clean line.
        j.put_container("a", "app", &container(4)).unwrap();
        drop(j);
        let (_, state) = Journal::open(&path).unwrap();
        assert_eq!(state["a"].containers["app"].attempt, 4);
    }

    #[test]
    fn an_unreadable_journal_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be.
        let path = dir.path().join("pods.journal");
        std::fs::create_dir(&path).unwrap();
        let err = Journal::open(&path).err().unwrap().to_string();
        assert!(err.contains("pods.journal"), "{err}");
    }

    #[test]
    fn the_file_stays_proportional_to_the_live_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pods.journal");
        let (j, _) = Journal::open(&path).unwrap();
        // Pods come and go; ten stay.
        for i in 0..5000 {
            let uid = format!("pod-{i}");
            j.put_pod(&uid, &pod(&uid)).unwrap();
            j.put_container(&uid, "app", &container(0)).unwrap();
            if i % 500 != 0 {
                j.forget(&uid).unwrap();
            }
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(
            len <= MIN_COMPACT_BYTES + 4096,
            "journal grew to {len} bytes"
        );
        assert_eq!(j.len(), len);
        drop(j);
        let (_, state) = Journal::open(&path).unwrap();
        assert_eq!(state.len(), 10);
        assert!(state.values().all(|s| s.containers.len() == 1));
    }
}
