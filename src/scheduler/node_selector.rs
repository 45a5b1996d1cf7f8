//! Node selector terms compiled once per pod (`v1.NodeSelector`,
//! `v1.PreferredSchedulingTerm`), matched against a node's labels and name.
//!
//! Semantics follow Kubernetes' `component-helpers/scheduling/corev1/nodeaffinity`:
//! terms are ORed, requirements inside a term are ANDed, a term without
//! requirements matches nothing, and a term with an invalid requirement (an
//! unknown operator, a `Gt` value that is not an integer, the wrong number of
//! values) never matches while the other terms still can.

use crate::api::core::{Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};

/// The only field a `matchFields` requirement may select on.
pub const NODE_NAME_FIELD: &str = "metadata.name";

/// One compiled `matchExpressions` requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct LabelRequirement {
    key: String,
    op: LabelOp,
}

impl LabelRequirement {
    fn compile(r: &NodeSelectorRequirement) -> Option<Self> {
        let single_int = || match r.values.as_slice() {
            [v] => v.parse::<i64>().ok(),
            _ => None,
        };
        let op = match r.operator.as_str() {
            "In" if !r.values.is_empty() => LabelOp::In(r.values.clone()),
            "NotIn" if !r.values.is_empty() => LabelOp::NotIn(r.values.clone()),
            "Exists" if r.values.is_empty() => LabelOp::Exists,
            "DoesNotExist" if r.values.is_empty() => LabelOp::DoesNotExist,
            "Gt" => LabelOp::Gt(single_int()?),
            "Lt" => LabelOp::Lt(single_int()?),
            _ => return None,
        };
        Some(LabelRequirement {
            key: r.key.clone(),
            op,
        })
    }

    fn matches(&self, node: &Node) -> bool {
        let got = node.metadata.labels.get(&self.key);
        match &self.op {
            LabelOp::In(values) => got.is_some_and(|v| values.contains(v)),
            LabelOp::NotIn(values) => !got.is_some_and(|v| values.contains(v)),
            LabelOp::Exists => got.is_some(),
            LabelOp::DoesNotExist => got.is_none(),
            // A label that is not an integer fails the comparison.
            LabelOp::Gt(bound) => got
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *bound),
            LabelOp::Lt(bound) => got
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *bound),
        }
    }
}

/// One compiled `matchFields` requirement: In or NotIn with exactly one value.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldRequirement {
    key: String,
    value: String,
    negate: bool,
}

impl FieldRequirement {
    fn compile(r: &NodeSelectorRequirement) -> Option<Self> {
        let [value] = r.values.as_slice() else {
            return None;
        };
        let negate = match r.operator.as_str() {
            "In" => false,
            "NotIn" => true,
            _ => return None,
        };
        Some(FieldRequirement {
            key: r.key.clone(),
            value: value.clone(),
            negate,
        })
    }

    fn matches(&self, node: &Node) -> bool {
        // Nodes expose only their name as a field; other keys have no value.
        let equal = self.key == NODE_NAME_FIELD && node.metadata.name == self.value;
        equal != self.negate
    }
}

/// A compiled `v1.NodeSelectorTerm`; `None` requirements mean the term was
/// invalid and matches nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TermMatcher {
    compiled: Option<(Vec<LabelRequirement>, Vec<FieldRequirement>)>,
    /// Node names the term is limited to by `matchFields metadata.name In`,
    /// intersected across its requirements (Kubernetes' PreFilter shortcut).
    pinned_names: Option<Vec<String>>,
}

impl TermMatcher {
    /// Compiles a term; invalid requirements make the whole term unmatchable.
    pub fn compile(term: &NodeSelectorTerm) -> Self {
        let labels: Option<Vec<_>> = term
            .match_expressions
            .iter()
            .map(LabelRequirement::compile)
            .collect();
        let fields: Option<Vec<_>> = term
            .match_fields
            .iter()
            .map(FieldRequirement::compile)
            .collect();
        let compiled = match (labels, fields) {
            (Some(l), Some(f)) if !(l.is_empty() && f.is_empty()) => Some((l, f)),
            _ => None,
        };
        let mut pinned: Option<Vec<String>> = None;
        for r in &term.match_fields {
            if r.key == NODE_NAME_FIELD && r.operator == "In" {
                pinned = Some(match pinned {
                    None => r.values.clone(),
                    Some(prev) => prev.into_iter().filter(|n| r.values.contains(n)).collect(),
                });
            }
        }
        TermMatcher {
            compiled,
            pinned_names: pinned,
        }
    }

    /// Whether every requirement of the term holds for `node`.
    pub fn matches(&self, node: &Node) -> bool {
        match &self.compiled {
            Some((labels, fields)) => {
                labels.iter().all(|r| r.matches(node)) && fields.iter().all(|r| r.matches(node))
            }
            None => false,
        }
    }
}

/// A compiled `v1.NodeSelector` (required node affinity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSelectorMatcher {
    terms: Vec<TermMatcher>,
}

impl NodeSelectorMatcher {
    /// Compiles every term.
    pub fn compile(sel: &NodeSelector) -> Self {
        NodeSelectorMatcher {
            terms: sel
                .node_selector_terms
                .iter()
                .map(TermMatcher::compile)
                .collect(),
        }
    }

    /// Whether any term matches `node` (no terms: nothing matches).
    pub fn matches(&self, node: &Node) -> bool {
        self.terms.iter().any(|t| t.matches(node))
    }

    /// The node names the selector is limited to, when every term pins
    /// names through `matchFields metadata.name In` (DaemonSet pods do):
    /// `None` when some term can match any node, `Some(empty)` when the
    /// terms conflict.
    pub fn pinned_node_names(&self) -> Option<Vec<String>> {
        if self.terms.is_empty() {
            return None;
        }
        let mut names: Vec<String> = Vec::new();
        for t in &self.terms {
            let pinned = t.pinned_names.as_ref()?;
            for n in pinned {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        Some(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectMeta;

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: name.into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn term(
        exprs: Vec<NodeSelectorRequirement>,
        fields: Vec<NodeSelectorRequirement>,
    ) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: exprs,
            match_fields: fields,
        }
    }

    #[test]
    fn expression_operators() {
        let n = node("n1", &[("zone", "a"), ("cores", "8")]);
        let cases = [
            (req("zone", "In", &["a", "b"]), true),
            (req("zone", "In", &["b"]), false),
            (req("zone", "NotIn", &["b"]), true),
            (req("zone", "NotIn", &["a"]), false),
            (req("missing", "NotIn", &["a"]), true),
            (req("zone", "Exists", &[]), true),
            (req("missing", "Exists", &[]), false),
            (req("missing", "DoesNotExist", &[]), true),
            (req("zone", "DoesNotExist", &[]), false),
            (req("cores", "Gt", &["4"]), true),
            (req("cores", "Gt", &["8"]), false),
            (req("cores", "Lt", &["9"]), true),
            (req("cores", "Lt", &["8"]), false),
            // Non-integer label value or absent label fails Gt/Lt.
            (req("zone", "Gt", &["1"]), false),
            (req("missing", "Lt", &["1"]), false),
            // Invalid requirements make the term unmatchable.
            (req("cores", "Gt", &["four"]), false),
            (req("cores", "Gt", &["1", "2"]), false),
            (req("zone", "In", &[]), false),
            (req("zone", "Exists", &["a"]), false),
            (req("zone", "Matches", &["a"]), false),
        ];
        for (r, want) in cases {
            let t = TermMatcher::compile(&term(vec![r.clone()], vec![]));
            assert_eq!(t.matches(&n), want, "{r:?}");
        }
    }

    #[test]
    fn field_requirements_select_on_node_name() {
        let n = node("n1", &[]);
        let cases = [
            (req(NODE_NAME_FIELD, "In", &["n1"]), true),
            (req(NODE_NAME_FIELD, "In", &["n2"]), false),
            (req(NODE_NAME_FIELD, "NotIn", &["n2"]), true),
            (req(NODE_NAME_FIELD, "NotIn", &["n1"]), false),
            (req("metadata.uid", "In", &["n1"]), false),
            (req(NODE_NAME_FIELD, "In", &["n1", "n2"]), false),
            (req(NODE_NAME_FIELD, "Exists", &[]), false),
        ];
        for (r, want) in cases {
            let t = TermMatcher::compile(&term(vec![], vec![r.clone()]));
            assert_eq!(t.matches(&n), want, "{r:?}");
        }
    }

    #[test]
    fn terms_are_ored_and_requirements_anded() {
        let n = node("n1", &[("zone", "a"), ("disk", "ssd")]);
        let sel = NodeSelector {
            node_selector_terms: vec![
                term(
                    vec![req("zone", "In", &["a"]), req("disk", "In", &["hdd"])],
                    vec![],
                ),
                term(vec![req("disk", "Exists", &[])], vec![]),
            ],
        };
        assert!(NodeSelectorMatcher::compile(&sel).matches(&n));
        let only_first = NodeSelector {
            node_selector_terms: sel.node_selector_terms[..1].to_vec(),
        };
        assert!(!NodeSelectorMatcher::compile(&only_first).matches(&n));
        // An empty term and an empty selector match nothing.
        let empty = NodeSelector {
            node_selector_terms: vec![term(vec![], vec![])],
        };
        assert!(!NodeSelectorMatcher::compile(&empty).matches(&n));
        assert!(!NodeSelectorMatcher::compile(&NodeSelector::default()).matches(&n));
        // An invalid term does not stop a valid one from matching.
        let mixed = NodeSelector {
            node_selector_terms: vec![
                term(vec![req("zone", "Bogus", &[])], vec![]),
                term(vec![req("zone", "In", &["a"])], vec![]),
            ],
        };
        assert!(NodeSelectorMatcher::compile(&mixed).matches(&n));
    }

    #[test]
    fn pinned_node_names() {
        let pin = |names: &[&str]| term(vec![], vec![req(NODE_NAME_FIELD, "In", names)]);
        let sel = |terms: Vec<NodeSelectorTerm>| {
            NodeSelectorMatcher::compile(&NodeSelector {
                node_selector_terms: terms,
            })
            .pinned_node_names()
        };
        assert_eq!(sel(vec![pin(&["a"])]), Some(vec!["a".to_string()]));
        assert_eq!(
            sel(vec![pin(&["a"]), pin(&["b"])]),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        // A term without a name pin can match any node.
        assert_eq!(
            sel(vec![
                pin(&["a"]),
                term(vec![req("x", "Exists", &[])], vec![])
            ]),
            None
        );
        // Two pins in one term intersect; disjoint pins conflict.
        let both = term(
            vec![],
            vec![
                req(NODE_NAME_FIELD, "In", &["a"]),
                req(NODE_NAME_FIELD, "In", &["b"]),
            ],
        );
        assert_eq!(sel(vec![both]), Some(vec![]));
        assert_eq!(sel(vec![]), None);
    }
}
