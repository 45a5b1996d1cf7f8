//! What the API server serves on the agents' behalf, as [`Extension`]s:
//! - [`tokenreview`]: `POST /apis/authentication.k8s.io/v1/tokenreviews`,
//!   so agents can authenticate the callers of their endpoint;
//! - [`logs`]: `GET /api/v1/namespaces/{ns}/pods/{name}/log`, proxied to
//!   the agent of the pod's node (streamed for `follow`);
//! - [`metrics`]: `metrics.k8s.io/v1beta1` NodeMetrics and PodMetrics,
//!   gathered from the agents' usage summaries.
//!
//! The API server calls agents as `system:apiserver` (a member of
//! `system:masters`) with its own token, over HTTPS without verifying the
//! agents' self-signed certificates, as the Kubernetes API server does
//! with kubelets by default.

pub mod logs;
pub mod metrics;
pub mod tokenreview;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::api::core::Node;
use crate::apiserver::{Api, ApiServer};
use crate::auth::Authenticator;
use crate::client::{ApiClient, ApiClientConfig};

/// The user name the API server uses towards agents.
pub const APISERVER_USER: &str = "system:apiserver";

/// HTTPS clients for agents, one per endpoint.
pub struct NodeClients {
    token: String,
    clients: Mutex<HashMap<String, ApiClient>>,
}

/// The agent endpoint (`https://IP:PORT`) a Node advertises.
pub fn node_endpoint(node: &Node) -> Result<String, String> {
    let addr = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|t| {
            node.status
                .addresses
                .iter()
                .find(|a| a.type_ == *t && !a.address.is_empty())
        })
        .map(|a| a.address.clone())
        .ok_or_else(|| format!("node {} reports no address", node.metadata.name))?;
    let port = node.status.daemon_endpoints.kubelet_endpoint.port;
    if port <= 0 {
        return Err(format!(
            "node {} reports no agent endpoint",
            node.metadata.name
        ));
    }
    Ok(if addr.contains(':') {
        format!("https://[{addr}]:{port}")
    } else {
        format!("https://{addr}:{port}")
    })
}

impl NodeClients {
    pub fn new(token: String) -> NodeClients {
        NodeClients {
            token,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// A client for the agent of `node`.
    pub fn for_node(&self, node: &Node) -> Result<ApiClient, String> {
        let url = node_endpoint(node)?;
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(&url) {
            return Ok(c.clone());
        }
        let mut cfg = ApiClientConfig::new(vec![url.clone()], Vec::new(), Some(self.token.clone()));
        cfg.ca_pem = None;
        cfg.insecure_skip_tls_verify = true;
        cfg.connect_timeout = Duration::from_secs(3);
        cfg.request_timeout = Duration::from_secs(30);
        let client = ApiClient::from_config(cfg)
            .map_err(|e| format!("cannot make a client for {url}: {e}"))?;
        clients.insert(url, client.clone());
        Ok(client)
    }
}

/// Adds the agent-facing routes to an API server. `apiserver_token` is the
/// token of [`APISERVER_USER`].
pub fn register(
    server: &mut ApiServer,
    api: Api,
    auth: Arc<Authenticator>,
    apiserver_token: String,
) {
    let nodes = Arc::new(NodeClients::new(apiserver_token));
    server
        .extensions
        .push(Arc::new(tokenreview::TokenReviews { auth }));
    server.extensions.push(Arc::new(logs::PodLogs {
        api: api.clone(),
        nodes: nodes.clone(),
    }));
    server
        .extensions
        .push(Arc::new(metrics::Metrics { api, nodes }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{DaemonEndpoint, NodeAddress};

    #[test]
    fn endpoints_from_node_status() {
        let mut n = Node::default();
        n.metadata.name = "n1".into();
        assert!(node_endpoint(&n).unwrap_err().contains("no address"));
        n.status.addresses = vec![
            NodeAddress {
                type_: "Hostname".into(),
                address: "host".into(),
            },
            NodeAddress {
                type_: "InternalIP".into(),
                address: "10.0.0.1".into(),
            },
        ];
        assert!(node_endpoint(&n).unwrap_err().contains("no agent endpoint"));
        n.status.daemon_endpoints.kubelet_endpoint = DaemonEndpoint { port: 10250 };
        assert_eq!(node_endpoint(&n).unwrap(), "https://10.0.0.1:10250");
        n.status.addresses[1].address = "fd00::1".into();
        assert_eq!(node_endpoint(&n).unwrap(), "https://[fd00::1]:10250");
    }
}
