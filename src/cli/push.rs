//! `wasmk push FILE [--name NAME[:TAG]]`: upload a Wasm module or component
//! to the cluster's module store.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::Args;

use crate::client::ApiClient;

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The .wasm file (core module or component).
    pub file: PathBuf,
    /// Module name and tag (default: the file's stem, tag `latest`).
    #[arg(long)]
    pub name: Option<String>,
}

/// `NAME[:TAG]` from `--name` or the file name.
pub fn name_and_tag(file: &Path, name: Option<&str>) -> Result<(String, String)> {
    let raw = match name {
        Some(n) => n.to_string(),
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .map(|s| {
                s.trim_end_matches(".component")
                    .to_lowercase()
                    .replace('_', "-")
            })
            .ok_or_else(|| anyhow!("cannot derive a module name from {}", file.display()))?,
    };
    Ok(match raw.split_once(':') {
        Some((n, t)) => (n.to_string(), t.to_string()),
        None => (raw, "latest".to_string()),
    })
}

/// Uploads a module; returns its digest.
pub async fn push_file(client: &ApiClient, file: &Path, name: &str, tag: &str) -> Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let path = format!(
        "/apis/wasmk.io/v1/modules/{}/push?tag={}",
        crate::client::path::encode_component(name),
        crate::client::path::encode_component(tag)
    );
    let v = client
        .upload(&path, bytes::Bytes::from(bytes))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    v["digest"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the server did not return a digest: {v}"))
}

pub async fn run(kubeconfig: Option<&Path>, args: PushArgs) -> Result<()> {
    let (client, _) = ApiClient::from_kubeconfig(kubeconfig).map_err(|e| anyhow!("{e}"))?;
    let (name, tag) = name_and_tag(&args.file, args.name.as_deref())?;
    let digest = push_file(&client, &args.file, &name, &tag).await?;
    println!("{name}:{tag} {digest}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_to_the_file_stem() {
        assert_eq!(
            name_and_tag(Path::new("/x/Hello_World.wasm"), None).unwrap(),
            ("hello-world".into(), "latest".into())
        );
        assert_eq!(
            name_and_tag(Path::new("a.wasm"), Some("web:v2")).unwrap(),
            ("web".into(), "v2".into())
        );
    }
}
