//! `wasmk token create|list|delete`: bootstrap tokens with which new nodes
//! join (`wasmk agent --token-file`), as `kubeadm token` manages them.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::auth::bootstrap;
use crate::client::{ApiClient, ListParams, resource_path};

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token and print it (`<id>.<secret>`).
    Create(CreateArgs),
    /// List the tokens (their ids, never their secrets).
    List,
    /// Delete a token by its id (or the whole token).
    Delete {
        /// `abcdef` or `abcdef.0123456789abcdef`.
        token: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// How long the token is valid (e.g. 24h, 30m); 0 never expires.
    #[arg(long, default_value = "24h", value_parser = super::agent::parse_duration)]
    pub ttl: Duration,
    /// A note kept with the token.
    #[arg(long, default_value = "")]
    pub description: String,
}

fn secrets_path(name: Option<&str>) -> String {
    resource_path("", "v1", "secrets", Some(bootstrap::NAMESPACE), name, None)
}

pub async fn run(kubeconfig: Option<&Path>, cmd: TokenCmd) -> Result<()> {
    let (client, _) = ApiClient::from_kubeconfig(kubeconfig).map_err(|e| anyhow!("{e}"))?;
    match cmd {
        TokenCmd::Create(a) => {
            let (id, secret) = bootstrap::generate();
            let expiration = (!a.ttl.is_zero())
                .then(|| chrono::Duration::from_std(a.ttl).ok())
                .flatten()
                .map(|d| chrono::Utc::now() + d);
            let body = bootstrap::secret_for(&id, &secret, expiration, &a.description);
            client
                .create(&secrets_path(None), &body)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            println!("{id}.{secret}");
        }
        TokenCmd::List => {
            let list = client
                .list(
                    &secrets_path(None),
                    &ListParams {
                        field_selector: Some(format!("type={}", bootstrap::SECRET_TYPE)),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| anyhow!("{e}"))?;
            println!("{:<8} {:<22} DESCRIPTION", "ID", "EXPIRES");
            for s in list["items"].as_array().into_iter().flatten() {
                let field = |k: &str| {
                    s["data"][k]
                        .as_str()
                        .and_then(|b| {
                            use base64::Engine;
                            base64::engine::general_purpose::STANDARD.decode(b).ok()
                        })
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_default()
                };
                let expires = field("expiration");
                println!(
                    "{:<8} {:<22} {}",
                    field("token-id"),
                    if expires.is_empty() {
                        "<never>".to_string()
                    } else {
                        expires
                    },
                    field("description")
                );
            }
        }
        TokenCmd::Delete { token } => {
            let id = token.split('.').next().unwrap_or("");
            if bootstrap::parse(&token).is_none() && !(id.len() == 6 && id == token) {
                return Err(anyhow!("{token:?} is neither a token id nor a token"));
            }
            client
                .delete(&secrets_path(Some(&bootstrap::secret_name(id))), &json!({}))
                .await
                .map_err(|e| anyhow!("{e}"))?;
            println!("bootstrap token {id:?} deleted");
        }
    }
    Ok(())
}
