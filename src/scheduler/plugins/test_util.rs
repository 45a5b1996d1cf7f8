//! Builders for the scheduler's tests: real `Node` and `Pod` objects turned
//! into `NodeInfo`/`PodInfo` through the same code the cache uses.

use std::collections::BTreeMap;

use crate::api::core::{
    Affinity, Container, Node, NodeAffinity, NodeCondition, NodeSelector, NodeSelectorTerm, Pod,
    PreferredSchedulingTerm, ResourceRequirements, Taint, Toleration,
};
use crate::api::quantity::Quantity;
use crate::api::{ObjectMeta, OwnerReference};
use crate::scheduler::framework::{NodeInfo, PodInfo};

#[derive(Clone, Debug)]
pub struct NodeBuilder(pub Node);

/// A Ready node with 4 CPUs, 8 GiB and room for 110 pods.
pub fn node(name: &str) -> NodeBuilder {
    let mut n = Node {
        metadata: ObjectMeta {
            name: name.into(),
            uid: format!("uid-{name}"),
            ..Default::default()
        },
        ..Default::default()
    };
    n.status.conditions.push(NodeCondition {
        type_: "Ready".into(),
        status: "True".into(),
        ..Default::default()
    });
    NodeBuilder(n).capacity("4", "8Gi", "110")
}

impl NodeBuilder {
    pub fn capacity(mut self, cpu: &str, memory: &str, pods: &str) -> Self {
        let mut list = BTreeMap::new();
        list.insert("cpu".to_string(), Quantity(cpu.into()));
        list.insert("memory".to_string(), Quantity(memory.into()));
        list.insert("pods".to_string(), Quantity(pods.into()));
        self.0.status.allocatable = list.clone();
        self.0.status.capacity = list;
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0.metadata.labels.insert(k.into(), v.into());
        self
    }

    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.0.spec.taints.push(Taint {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
            time_added: None,
        });
        self
    }

    pub fn ready(mut self, status: &str) -> Self {
        for c in &mut self.0.status.conditions {
            if c.type_ == "Ready" {
                c.status = status.into();
            }
        }
        self
    }

    pub fn cordoned(mut self) -> Self {
        self.0.spec.unschedulable = true;
        self
    }

    pub fn obj(self) -> Node {
        self.0
    }

    pub fn build(self) -> NodeInfo {
        NodeInfo::from_node(&self.0)
    }
}

#[derive(Clone, Debug)]
pub struct PodBuilder(pub Pod);

/// A pod in `default` with one container and no requests.
pub fn pod(name: &str) -> PodBuilder {
    PodBuilder(Pod {
        metadata: ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            ..Default::default()
        },
        spec: crate::api::core::PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: "hello:1".into(),
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    })
}

impl PodBuilder {
    pub fn request(mut self, cpu: &str, memory: &str) -> Self {
        let mut requests = BTreeMap::new();
        if !cpu.is_empty() {
            requests.insert("cpu".to_string(), Quantity(cpu.into()));
        }
        if !memory.is_empty() {
            requests.insert("memory".to_string(), Quantity(memory.into()));
        }
        self.0.spec.containers[0].resources = ResourceRequirements {
            requests,
            ..Default::default()
        };
        self
    }

    pub fn toleration(mut self, key: &str, op: &str, value: &str, effect: &str) -> Self {
        self.0.spec.tolerations.push(Toleration {
            key: key.into(),
            operator: op.into(),
            value: value.into(),
            effect: effect.into(),
            toleration_seconds: None,
        });
        self
    }

    pub fn selector(mut self, k: &str, v: &str) -> Self {
        self.0.spec.node_selector.insert(k.into(), v.into());
        self
    }

    pub fn node_name(mut self, n: &str) -> Self {
        self.0.spec.node_name = n.into();
        self
    }

    fn node_affinity(&mut self) -> &mut NodeAffinity {
        self.0
            .spec
            .affinity
            .get_or_insert_with(Affinity::default)
            .node_affinity
            .get_or_insert_with(NodeAffinity::default)
    }

    pub fn required(mut self, terms: Vec<NodeSelectorTerm>) -> Self {
        self.node_affinity()
            .required_during_scheduling_ignored_during_execution = Some(NodeSelector {
            node_selector_terms: terms,
        });
        self
    }

    pub fn preferred(mut self, weight: i32, term: NodeSelectorTerm) -> Self {
        self.node_affinity()
            .preferred_during_scheduling_ignored_during_execution
            .push(PreferredSchedulingTerm {
                weight,
                preference: term,
            });
        self
    }

    pub fn owner(mut self, uid: &str) -> Self {
        self.0.metadata.owner_references.push(OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        });
        self
    }

    pub fn obj(self) -> Pod {
        self.0
    }

    pub fn build(self) -> PodInfo {
        PodInfo::from_pod(&self.0)
    }
}

/// A `matchExpressions` term with one requirement.
pub fn expr(key: &str, op: &str, values: &[&str]) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: vec![crate::api::core::NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }],
        match_fields: vec![],
    }
}

/// A `matchFields metadata.name In [name]` term, as DaemonSets write it.
pub fn pinned_to(name: &str) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: vec![],
        match_fields: vec![crate::api::core::NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: vec![name.into()],
        }],
    }
}
