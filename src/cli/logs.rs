//! `wasmk logs [-f] POD [-c CONTAINER]`: a pod's container log, as
//! `kubectl logs` prints it.

use std::io::Write;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use futures::StreamExt;
use http::Method;

use crate::client::path::{encode_component, with_query};
use crate::client::{ApiClient, ApiError};

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// The container (needed when the pod has several).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming new output until the container stops.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The previous run of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Prefix each line with its RFC 3339 timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// Only lines newer than this (e.g. 10s, 5m).
    #[arg(long, value_parser = super::agent::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Stop after this many bytes.
    #[arg(long)]
    pub limit_bytes: Option<u64>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// The request path for `args` in `namespace`.
pub fn log_path(args: &LogsArgs, namespace: &str) -> Result<String> {
    let pod = args.pod.strip_prefix("pod/").unwrap_or(&args.pod);
    let pod = pod.strip_prefix("pods/").unwrap_or(pod);
    if pod.is_empty() || pod.contains('/') {
        bail!("invalid pod name {:?}", args.pod);
    }
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(c) = &args.container {
        q.push(("container", c.clone()));
    }
    if args.follow {
        q.push(("follow", "true".into()));
    }
    if args.previous {
        q.push(("previous", "true".into()));
    }
    if args.tail >= 0 {
        q.push(("tailLines", args.tail.to_string()));
    }
    if args.timestamps {
        q.push(("timestamps", "true".into()));
    }
    if let Some(s) = args.since {
        q.push(("sinceSeconds", s.as_secs().max(1).to_string()));
    }
    if let Some(l) = args.limit_bytes {
        q.push(("limitBytes", l.to_string()));
    }
    Ok(with_query(
        &format!(
            "/api/v1/namespaces/{}/pods/{}/log",
            encode_component(namespace),
            encode_component(pod)
        ),
        &q,
    ))
}

pub async fn run(kubeconfig: Option<&std::path::Path>, args: LogsArgs) -> Result<()> {
    let (client, default_ns) = ApiClient::from_kubeconfig(kubeconfig)?;
    let ns = args.namespace.clone().unwrap_or(default_ns);
    let path = log_path(&args, &ns)?;
    let (status, _, mut body) = client.raw_stream(Method::GET, &path, None, None).await?;
    if !status.is_success() {
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        return Err(anyhow!("{}", ApiError::from_response(status, &bytes)));
    }
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        out.write_all(&chunk?)?;
        // Followed output should appear as it comes.
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        logs: LogsArgs,
    }

    fn path(argv: &[&str]) -> String {
        let cli = Cli::try_parse_from(std::iter::once("logs").chain(argv.iter().copied())).unwrap();
        log_path(&cli.logs, "default").unwrap()
    }

    #[test]
    fn paths_carry_the_options() {
        assert_eq!(path(&["web"]), "/api/v1/namespaces/default/pods/web/log");
        assert_eq!(
            path(&["pod/web", "-c", "app", "-f", "--tail", "5"]),
            "/api/v1/namespaces/default/pods/web/log?container=app&follow=true&tailLines=5"
        );
        assert_eq!(
            path(&[
                "web",
                "-p",
                "--timestamps",
                "--since",
                "2m",
                "--limit-bytes",
                "10"
            ]),
            "/api/v1/namespaces/default/pods/web/log?previous=true&timestamps=true&sinceSeconds=120&limitBytes=10"
        );
    }
}
