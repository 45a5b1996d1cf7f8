//! `TaintToleration`: a node's `NoSchedule`/`NoExecute` taints keep away
//! pods that do not tolerate them (Filter); untolerated `PreferNoSchedule`
//! taints make a node less attractive (Score, reversed normalization).

use crate::api::core::Toleration;
use crate::scheduler::framework::{
    CycleState, FilterPlugin, NodeInfo, NodeTaint, PodInfo, Reason, ScorePlugin, TaintEffect,
    Unfit, default_normalize,
};

/// The plugin's name in profiles and messages.
pub const NAME: &str = "TaintToleration";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    /// `Equal` or empty: values must be equal.
    Equal,
    Exists,
    /// Anything else tolerates nothing.
    Unknown,
}

/// A `v1.Toleration` ready for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TolerationMatcher {
    key: String,
    operator: Operator,
    value: String,
    /// `None` tolerates every effect.
    effect: Option<TaintEffect>,
}

impl TolerationMatcher {
    /// Compiles one toleration.
    pub fn compile(t: &Toleration) -> Self {
        TolerationMatcher {
            key: t.key.clone(),
            operator: match t.operator.as_str() {
                "" | "Equal" => Operator::Equal,
                "Exists" => Operator::Exists,
                _ => Operator::Unknown,
            },
            value: t.value.clone(),
            effect: (!t.effect.is_empty()).then(|| TaintEffect::parse(&t.effect)),
        }
    }

    /// Kubernetes' `Toleration.ToleratesTaint`: the effect (if set) and the
    /// key (if set) must match, then `Exists` tolerates any value and
    /// `Equal` only the same one.
    pub fn tolerates(&self, taint: &NodeTaint) -> bool {
        if let Some(effect) = self.effect
            && (effect != taint.effect || effect == TaintEffect::Unknown)
        {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator {
            Operator::Equal => self.value == taint.value,
            Operator::Exists => true,
            Operator::Unknown => false,
        }
    }

    /// Whether the toleration can apply to `PreferNoSchedule` taints.
    fn covers_prefer_no_schedule(&self) -> bool {
        matches!(self.effect, None | Some(TaintEffect::PreferNoSchedule))
    }
}

/// Whether any toleration tolerates `taint`.
pub fn tolerated(tolerations: &[TolerationMatcher], taint: &NodeTaint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

/// Filter and score by taints.
#[derive(Clone, Copy, Debug, Default)]
pub struct TaintToleration;

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
        let untolerated = node.taints().iter().any(|t| {
            matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute)
                && !tolerated(&pod.tolerations, t)
        });
        if untolerated {
            Err(Unfit::unresolvable(Reason::UntoleratedTaint))
        } else {
            Ok(())
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The number of `PreferNoSchedule` taints the pod does not tolerate.
    fn score(&self, pod: &PodInfo, node: &NodeInfo, _cycle: &CycleState) -> i64 {
        node.taints()
            .iter()
            .filter(|t| t.effect == TaintEffect::PreferNoSchedule)
            .filter(|t| {
                !pod.tolerations
                    .iter()
                    .any(|tol| tol.covers_prefer_no_schedule() && tol.tolerates(t))
            })
            .count() as i64
    }

    /// Fewer untolerated taints is better.
    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::test_util::{node, pod};

    fn taint(key: &str, value: &str, effect: &str) -> NodeTaint {
        NodeTaint {
            key: key.into(),
            value: value.into(),
            effect: TaintEffect::parse(effect),
        }
    }

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> TolerationMatcher {
        TolerationMatcher::compile(&Toleration {
            key: key.into(),
            operator: op.into(),
            value: value.into(),
            effect: effect.into(),
            toleration_seconds: None,
        })
    }

    #[test]
    fn toleration_matching_table() {
        let t = taint("dedicated", "gpu", "NoSchedule");
        let cases = [
            (tol("dedicated", "Equal", "gpu", "NoSchedule"), true),
            (tol("dedicated", "", "gpu", ""), true),
            (tol("dedicated", "Equal", "cpu", "NoSchedule"), false),
            (tol("dedicated", "Exists", "", "NoSchedule"), true),
            (tol("dedicated", "Exists", "", "NoExecute"), false),
            (tol("other", "Exists", "", ""), false),
            (tol("", "Exists", "", ""), true),
            (tol("", "Exists", "", "PreferNoSchedule"), false),
            (tol("dedicated", "Gt", "gpu", ""), false),
            (tol("dedicated", "Exists", "", "Bogus"), false),
        ];
        for (m, want) in cases {
            assert_eq!(m.tolerates(&t), want, "{m:?}");
        }
    }

    #[test]
    fn filter_rejects_untolerated_no_schedule_and_no_execute() {
        let plain = pod("p").build();
        let tolerant = pod("p").toleration("dedicated", "Exists", "", "").build();
        let cases = [
            (node("n").build(), &plain, Ok(())),
            (
                node("n").taint("dedicated", "gpu", "NoSchedule").build(),
                &plain,
                Err(Reason::UntoleratedTaint),
            ),
            (
                node("n").taint("dedicated", "gpu", "NoExecute").build(),
                &plain,
                Err(Reason::UntoleratedTaint),
            ),
            // PreferNoSchedule only lowers the score.
            (
                node("n")
                    .taint("dedicated", "gpu", "PreferNoSchedule")
                    .build(),
                &plain,
                Ok(()),
            ),
            (
                node("n").taint("dedicated", "gpu", "NoSchedule").build(),
                &tolerant,
                Ok(()),
            ),
            // Not-ready nodes are tainted even before the controller acts.
            (
                node("n").ready("False").build(),
                &plain,
                Err(Reason::UntoleratedTaint),
            ),
            (
                node("n").ready("Unknown").build(),
                &plain,
                Err(Reason::UntoleratedTaint),
            ),
            (
                node("n").ready("Unknown").build(),
                &pod("p")
                    .toleration("node.kubernetes.io/unreachable", "Exists", "", "NoSchedule")
                    .build(),
                Ok(()),
            ),
        ];
        for (n, p, want) in cases {
            let got = TaintToleration.filter(p, &n).map_err(|u| u.reasons()[0]);
            assert_eq!(got, want, "{:?}", n.taints());
        }
        assert_eq!(
            Reason::UntoleratedTaint.as_str(),
            "node(s) had untolerated taint(s)"
        );
    }

    #[test]
    fn score_counts_untolerated_prefer_no_schedule_and_reverses() {
        let nodes = [
            node("a").build(),
            node("b").taint("x", "", "PreferNoSchedule").build(),
            node("c")
                .taint("x", "", "PreferNoSchedule")
                .taint("y", "", "PreferNoSchedule")
                .build(),
        ];
        let plain = pod("p").build();
        let cycle = CycleState::default();
        let mut raw: Vec<i64> = nodes
            .iter()
            .map(|n| TaintToleration.score(&plain, n, &cycle))
            .collect();
        assert_eq!(raw, vec![0, 1, 2]);
        TaintToleration.normalize(&mut raw);
        assert_eq!(raw, vec![100, 50, 0]);
        // A NoSchedule-only toleration does not help against PreferNoSchedule.
        let wrong_effect = pod("p").toleration("x", "Exists", "", "NoSchedule").build();
        assert_eq!(TaintToleration.score(&wrong_effect, &nodes[1], &cycle), 1);
        let right = pod("p").toleration("x", "Exists", "", "").build();
        assert_eq!(TaintToleration.score(&right, &nodes[2], &cycle), 1);
    }
}
