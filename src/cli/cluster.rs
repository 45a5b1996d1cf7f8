//! `wasmk cluster ...` (members and the shared CA) and `wasmk snapshot ...`
//! (backups).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::Value;

use crate::client::{ApiClient, ApiClientConfig, Kubeconfig};
use crate::cluster::bundle::{self, STATUS_PATH};
use crate::cluster::{Member, backup, parse_initial_cluster, validate_name};

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Show the masters: role, term, commit and applied index, health.
    Status,
    /// Add a master (as a learner; it becomes a voter once caught up).
    /// Then start it with `wasmk server --join`.
    AddMaster {
        /// The new master's name.
        name: String,
        /// URL of its peer port (https://HOST:PORT).
        #[arg(long)]
        peer_url: String,
        /// URL of its API (https://HOST:PORT).
        #[arg(long, default_value = "")]
        client_url: String,
    },
    /// Remove a master from the cluster (then stop it and wipe its data
    /// directory).
    RemoveMaster {
        /// The master's name.
        name: String,
    },
    /// Create a cluster bundle (CA and token file) to copy to every master.
    InitPki {
        /// Directory to create it in.
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Save a consistent snapshot of the cluster's state (objects and
    /// modules) through the API.
    Save {
        /// Where to write it.
        file: PathBuf,
    },
    /// Restore a snapshot into the data directory of one master of a new
    /// cluster (run it for every master, with the same --initial-cluster).
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// The new master's data directory (must hold no state yet).
        #[arg(long)]
        data_dir: PathBuf,
        /// The new master's name.
        #[arg(long)]
        name: String,
        /// The new cluster's masters: NAME=https://HOST:PEERPORT,...
        #[arg(long)]
        initial_cluster: String,
        /// The cluster bundle to install alongside (as `wasmk server
        /// --pki-bundle` would).
        #[arg(long)]
        pki_bundle: Option<PathBuf>,
    },
    /// Verify a snapshot file and show what it holds.
    Status { file: PathBuf },
}

fn client(kc: Option<&Path>) -> Result<ApiClient> {
    Ok(ApiClient::from_kubeconfig(kc)?.0)
}

/// A client for one member's API with the kubeconfig's credentials.
fn member_client(kc: Option<&Path>, url: &str) -> Result<ApiClient> {
    let path = crate::client::resolve(kc)?;
    let access = Kubeconfig::load(&path)?.current()?;
    let mut cfg = ApiClientConfig::from_access(&access);
    cfg.servers = vec![url.to_string()];
    cfg.request_timeout = Duration::from_secs(3);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.tls_server_name = None;
    Ok(ApiClient::from_config(cfg)?)
}

pub async fn cluster(kc: Option<&Path>, cmd: ClusterCmd) -> Result<()> {
    match cmd {
        ClusterCmd::Status => status(kc).await,
        ClusterCmd::AddMaster {
            name,
            peer_url,
            client_url,
        } => {
            validate_name(&name)?;
            let m = Member::new(&name, &peer_url, &client_url);
            let s = bundle::add_member(&client(kc)?, &m).await?;
            println!(
                "master {} (raft id {}) added as a {}; start it with `wasmk server --name {} --join URL --token-file FILE`",
                s.member.name, s.member.id, s.role, s.member.name
            );
            Ok(())
        }
        ClusterCmd::RemoveMaster { name } => {
            bundle::remove_member(&client(kc)?, &name).await?;
            println!("master {name} removed; stop it and wipe its data directory");
            Ok(())
        }
        ClusterCmd::InitPki { dir } => {
            let b = bundle::init_pki(&dir)?;
            let _ = b;
            println!(
                "cluster bundle written to {}: {}, {} (secret), {} (secret)",
                dir.display(),
                bundle::CA_CERT,
                bundle::CA_KEY,
                bundle::TOKENS
            );
            println!(
                "copy it to every master and start each with `wasmk server --pki-bundle {}`",
                dir.display()
            );
            Ok(())
        }
    }
}

/// Left-aligned columns separated by three spaces, as kubectl prints.
fn render_rows(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn num(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr).and_then(Value::as_u64).unwrap_or(0)
}

fn text(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The table `cluster status` prints, from the status the contacted
/// master returned and each member's own status (or why it could not be
/// read).
fn status_table(first: &Value, own: &[(String, Result<Value, String>)]) -> String {
    let leader = own
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .find(|s| text(s, "/raft/role") == "Leader");
    let mut rows = vec![
        [
            "NAME", "ID", "MEMBER", "RAFT", "TERM", "COMMIT", "APPLIED", "LAG", "HEALTH", "API",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let members = first["members"].as_array().cloned().unwrap_or_default();
    for m in &members {
        let name = text(m, "/name");
        let id = num(m, "/id");
        let mine = own.iter().find(|(n, _)| *n == name).map(|(_, s)| s);
        let lag = leader
            .and_then(|l| {
                l["raft"]["progress"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| num(p, "/id") == id))
                    .map(|p| {
                        num(l, "/raft/commit")
                            .saturating_sub(num(p, "/matched"))
                            .to_string()
                    })
            })
            .unwrap_or_else(|| "-".into());
        let (raft, term, commit, applied, health) = match mine {
            Some(Ok(s)) => (
                text(s, "/raft/role"),
                num(s, "/raft/term").to_string(),
                num(s, "/raft/commit").to_string(),
                num(s, "/raft/applied").to_string(),
                text(s, "/health"),
            ),
            Some(Err(e)) => (
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("unreachable: {e}"),
            ),
            None => (
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "no API address".into(),
            ),
        };
        rows.push(vec![
            name,
            id.to_string(),
            text(m, "/role"),
            raft,
            term,
            commit,
            applied,
            lag,
            health,
            text(m, "/clientURL"),
        ]);
    }
    let head = match leader {
        Some(l) => format!(
            "leader: {} (raft id {}), term {}, {} members\n",
            text(l, "/name"),
            num(l, "/id"),
            num(l, "/raft/term"),
            members.len()
        ),
        None => format!("no leader reachable, {} members\n", members.len()),
    };
    head + &render_rows(&rows)
}

async fn status(kc: Option<&Path>) -> Result<()> {
    let first = client(kc)?
        .get(STATUS_PATH)
        .await
        .context("read the cluster status (is this a `wasmk server` cluster?)")?;
    let members = first["members"].as_array().cloned().unwrap_or_default();
    let mut own = Vec::new();
    for m in &members {
        let name = text(m, "/name");
        let url = text(m, "/clientURL");
        if url.is_empty() {
            continue;
        }
        let got = match member_client(kc, &url) {
            Ok(c) => c.get(STATUS_PATH).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        own.push((name, got));
    }
    print!("{}", status_table(&first, &own));
    Ok(())
}

pub async fn snapshot(kc: Option<&Path>, cmd: SnapshotCmd) -> Result<()> {
    match cmd {
        SnapshotCmd::Save { file } => {
            let info = backup::save(&client(kc)?, &file).await?;
            println!(
                "snapshot saved to {}: index {}, {} objects, {} module chunks, {} bytes",
                file.display(),
                info.index,
                info.objects,
                info.blob_chunks,
                info.bytes
            );
            Ok(())
        }
        SnapshotCmd::Restore {
            file,
            data_dir,
            name,
            initial_cluster,
            pki_bundle,
        } => {
            validate_name(&name)?;
            let members = parse_initial_cluster(&initial_cluster)?;
            if let Some(dir) = &pki_bundle {
                bundle::Bundle::load_dir(dir)?.install(&data_dir)?;
            }
            let info = backup::restore(&file, &data_dir, &name, &members).await?;
            println!(
                "restored index {} ({} objects, {} module chunks) into {}",
                info.index,
                info.objects,
                info.blob_chunks,
                data_dir.display()
            );
            println!(
                "start it with `wasmk server --name {name} --data-dir {} --initial-cluster {initial_cluster}{}`",
                data_dir.display(),
                if pki_bundle.is_some() {
                    ""
                } else {
                    " --pki-bundle DIR"
                }
            );
            Ok(())
        }
        SnapshotCmd::Status { file } => {
            let info = backup::inspect(&file).await?;
            if info.objects == 0 && info.index == 0 {
                bail!("{} holds an empty snapshot", file.display());
            }
            println!(
                "{}: index {}, {} objects, {} module chunks, {} bytes",
                file.display(),
                info.index,
                info.objects,
                info.blob_chunks,
                info.bytes
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_table_shows_every_member_with_lag_and_health() {
        let members = json!([
            {"name": "m1", "id": 11, "role": "voter", "clientURL": "https://a:1"},
            {"name": "m2", "id": 22, "role": "voter", "clientURL": "https://b:1"},
            {"name": "m3", "id": 33, "role": "learner", "clientURL": "https://c:1"},
        ]);
        let first = json!({"members": members});
        let leader = json!({"name": "m1", "id": 11, "health": "ok",
            "raft": {"role": "Leader", "term": 4, "commit": 50, "applied": 50,
                     "progress": [{"id": 11, "matched": 50}, {"id": 22, "matched": 48}, {"id": 33, "matched": 10}]}});
        let follower = json!({"name": "m2", "id": 22, "health": "ok",
            "raft": {"role": "Follower", "term": 4, "commit": 49, "applied": 49}});
        let own = vec![
            ("m1".to_string(), Ok(leader)),
            ("m2".to_string(), Ok(follower)),
            ("m3".to_string(), Err("connection refused".to_string())),
        ];
        let out = status_table(&first, &own);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "leader: m1 (raft id 11), term 4, 3 members");
        assert!(
            lines[1].starts_with("NAME   ID   MEMBER    RAFT"),
            "{}",
            lines[1]
        );
        let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            cols(lines[2])[..9],
            ["m1", "11", "voter", "Leader", "4", "50", "50", "0", "ok"]
        );
        assert_eq!(cols(lines[3])[7], "2");
        assert_eq!(
            cols(lines[4])[..8],
            ["m3", "33", "learner", "-", "-", "-", "-", "40"]
        );
        assert!(lines[4].contains("unreachable: connection refused"));
    }

    #[test]
    fn rows_align() {
        let rows = vec![
            vec!["A".to_string(), "BB".to_string(), "C".to_string()],
            vec!["xxx".to_string(), "y".to_string(), "z".to_string()],
        ];
        assert_eq!(render_rows(&rows), "A     BB   C\nxxx   y    z\n");
    }
}
