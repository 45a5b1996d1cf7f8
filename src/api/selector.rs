//! Label and field selectors: parsing the Kubernetes string syntax,
//! converting `metav1.LabelSelector` values, matching, and validation.
//!
//! Label selector strings (`?labelSelector=`) use the grammar of
//! `k8s.io/apimachinery/pkg/labels`: comma-separated requirements, each one of
//! `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`. A
//! [`LabelSelectorExpr`] keeps its requirements sorted by key, so
//! [`Display`](std::fmt::Display) gives one canonical form (the one the Scale
//! subresource reports in `status.selector`).
//!
//! Field selectors (`?fieldSelector=`) are `k=v`, `k==v`, `k!=v` joined by
//! commas; `\` escapes `,`, `=`, `!` and `\` inside values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::meta::LabelSelector;
use super::validation::{FieldErrors, label_value, qualified_name};

/// Why a selector could not be parsed or converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "unable to parse requirement: found '{token}' at position {position}, expected {expected}"
    )]
    UnexpectedToken {
        token: String,
        position: usize,
        expected: &'static str,
    },
    #[error("invalid label key {key:?} at position {position}: {reason}")]
    InvalidKey {
        key: String,
        position: usize,
        reason: String,
    },
    #[error("invalid label value {value:?} for key {key:?} at position {position}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        position: usize,
        reason: String,
    },
    #[error(
        "values for key {key:?} at position {position}: for 'in', 'notin' operators, values set can't be empty"
    )]
    EmptyValues { key: String, position: usize },
    #[error("{operator:?} is not a valid label selector operator for key {key:?}")]
    UnknownOperator { key: String, operator: String },
    #[error("values for key {key:?}: {reason}")]
    BadValues { key: String, reason: &'static str },
    #[error("invalid field selector term {term:?}: {reason}")]
    InvalidFieldTerm { term: String, reason: &'static str },
}

/// The operator of one label requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// `k=v` or `k==v`, and `matchLabels` entries.
    Equals,
    /// `k!=v`; also matches objects without the label.
    NotEquals,
    /// `k in (a,b)`.
    In,
    /// `k notin (a,b)`; also matches objects without the label.
    NotIn,
    /// `k`.
    Exists,
    /// `!k`.
    DoesNotExist,
}

/// One label requirement: a key, an operator and its values (sorted).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// Exactly one for Equals/NotEquals, at least one for In/NotIn, none for
    /// Exists/DoesNotExist.
    pub values: BTreeSet<String>,
}

impl Requirement {
    /// Whether a label set satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let got = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::In => got.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => !got.is_some_and(|v| self.values.contains(v)),
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.iter().next().map(String::as_str).unwrap_or("");
        let set = || self.values.iter().cloned().collect::<Vec<_>>().join(",");
        match self.operator {
            Operator::Equals => write!(f, "{}={}", self.key, first),
            Operator::NotEquals => write!(f, "{}!={}", self.key, first),
            Operator::In => write!(f, "{} in ({})", self.key, set()),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, set()),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// A parsed label selector: the AND of its requirements. The empty
/// expression matches every label set.
///
/// Where Kubernetes says an *absent* selector matches nothing (a Service
/// without `spec.selector`, a PodDisruptionBudget without one), the caller
/// must handle `None` itself: this type only represents present selectors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelSelectorExpr {
    requirements: Vec<Requirement>,
}

impl LabelSelectorExpr {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        LabelSelectorExpr::default()
    }

    /// Parses the string syntax of `?labelSelector=`.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut p = Parser {
            tokens: lex(input),
            pos: 0,
        };
        let mut requirements = Vec::new();
        if p.peek().kind == Tok::End {
            return Ok(LabelSelectorExpr::default());
        }
        loop {
            requirements.push(p.requirement()?);
            let t = p.next();
            match t.kind {
                Tok::End => break,
                Tok::Comma => {}
                _ => return Err(t.unexpected("',' or end of selector")),
            }
        }
        Ok(Self::from_requirements(requirements))
    }

    /// Converts a `metav1.LabelSelector`: `matchLabels` become equality
    /// requirements, `matchExpressions` In/NotIn/Exists/DoesNotExist.
    pub fn from_label_selector(sel: &LabelSelector) -> Result<Self, SelectorError> {
        let mut reqs = Vec::with_capacity(sel.match_labels.len() + sel.match_expressions.len());
        for (k, v) in &sel.match_labels {
            check_key(k, 0)?;
            check_value(k, v, 0)?;
            reqs.push(Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: BTreeSet::from([v.clone()]),
            });
        }
        for e in &sel.match_expressions {
            check_key(&e.key, 0)?;
            let operator = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::UnknownOperator {
                        key: e.key.clone(),
                        operator: other.to_string(),
                    });
                }
            };
            let wants_values = matches!(operator, Operator::In | Operator::NotIn);
            if wants_values && e.values.is_empty() {
                return Err(SelectorError::BadValues {
                    key: e.key.clone(),
                    reason: "must be specified when `operator` is 'In' or 'NotIn'",
                });
            }
            if !wants_values && !e.values.is_empty() {
                return Err(SelectorError::BadValues {
                    key: e.key.clone(),
                    reason: "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                });
            }
            for v in &e.values {
                check_value(&e.key, v, 0)?;
            }
            reqs.push(Requirement {
                key: e.key.clone(),
                operator,
                values: e.values.iter().cloned().collect(),
            });
        }
        Ok(Self::from_requirements(reqs))
    }

    /// A selector of equality requirements, one per entry (a Service's or a
    /// ReplicationController's `spec.selector`).
    pub fn from_map(labels: &BTreeMap<String, String>) -> Self {
        Self::from_requirements(
            labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: BTreeSet::from([v.clone()]),
                })
                .collect(),
        )
    }

    fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        // Sorting by key (stable, then full order) gives one canonical string.
        requirements.sort();
        requirements.dedup();
        LabelSelectorExpr { requirements }
    }

    /// Whether every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector has no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl fmt::Display for LabelSelectorExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LabelSelectorExpr {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Renders a `metav1.LabelSelector` in the canonical string form, or `None`
/// when it is not a valid selector.
pub fn label_selector_string(sel: &LabelSelector) -> Option<String> {
    LabelSelectorExpr::from_label_selector(sel)
        .ok()
        .map(|e| e.to_string())
}

fn check_key(key: &str, position: usize) -> Result<(), SelectorError> {
    qualified_name(key).map_err(|reason| SelectorError::InvalidKey {
        key: key.to_string(),
        position,
        reason,
    })
}

fn check_value(key: &str, value: &str, position: usize) -> Result<(), SelectorError> {
    label_value(value).map_err(|reason| SelectorError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        position,
        reason,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Ident,
    Comma,
    Eq,
    DoubleEq,
    NotEq,
    Bang,
    In,
    NotIn,
    Open,
    Close,
    End,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Tok,
    text: String,
    /// Byte offset in the input, for error messages.
    position: usize,
}

impl Token {
    fn unexpected(&self, expected: &'static str) -> SelectorError {
        SelectorError::UnexpectedToken {
            token: if self.kind == Tok::End {
                "end of selector".to_string()
            } else {
                self.text.clone()
            },
            position: self.position,
            expected,
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, ',' | '=' | '!' | '(' | ')') || c.is_whitespace()
}

fn lex(input: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let single = |kind| Token {
            kind,
            text: c.to_string(),
            position: i,
        };
        match c {
            ',' => {
                out.push(single(Tok::Comma));
                chars.next();
            }
            '(' => {
                out.push(single(Tok::Open));
                chars.next();
            }
            ')' => {
                out.push(single(Tok::Close));
                chars.next();
            }
            '=' | '!' => {
                chars.next();
                let double = chars.peek().map(|&(_, n)| n) == Some('=');
                let (kind, text) = match (c, double) {
                    ('=', true) => (Tok::DoubleEq, "=="),
                    ('=', false) => (Tok::Eq, "="),
                    ('!', true) => (Tok::NotEq, "!="),
                    _ => (Tok::Bang, "!"),
                };
                if double {
                    chars.next();
                }
                out.push(Token {
                    kind,
                    text: text.to_string(),
                    position: i,
                });
            }
            _ => {
                let mut text = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if is_special(c) {
                        break;
                    }
                    text.push(c);
                    chars.next();
                }
                let kind = match text.as_str() {
                    "in" => Tok::In,
                    "notin" => Tok::NotIn,
                    _ => Tok::Ident,
                };
                out.push(Token {
                    kind,
                    text,
                    position: i,
                });
            }
        }
    }
    out.push(Token {
        kind: Tok::End,
        text: String::new(),
        position: input.len(),
    });
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // lex always ends with End, and next() never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let first = self.next();
        let (negated, key_tok) = match first.kind {
            Tok::Bang => (true, self.next()),
            _ => (false, first),
        };
        // `in`/`notin` are keywords only after a key; as keys they are fine.
        if !matches!(key_tok.kind, Tok::Ident | Tok::In | Tok::NotIn) {
            return Err(key_tok.unexpected("a label key"));
        }
        let key = key_tok.text.clone();
        check_key(&key, key_tok.position)?;
        if negated {
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
                values: BTreeSet::new(),
            });
        }
        let op_tok = self.peek().clone();
        let operator = match op_tok.kind {
            Tok::Comma | Tok::End => {
                return Ok(Requirement {
                    key,
                    operator: Operator::Exists,
                    values: BTreeSet::new(),
                });
            }
            Tok::Eq | Tok::DoubleEq => Operator::Equals,
            Tok::NotEq => Operator::NotEquals,
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            _ => return Err(op_tok.unexpected("'=', '==', '!=', 'in', 'notin', ',' or end")),
        };
        self.next();
        let values = match operator {
            Operator::Equals | Operator::NotEquals => {
                let v = self.peek().clone();
                // `k=` (empty value) is valid: the label must be the empty string.
                let value = match v.kind {
                    Tok::Ident | Tok::In | Tok::NotIn => {
                        self.next();
                        v.text.clone()
                    }
                    Tok::Comma | Tok::End => String::new(),
                    _ => return Err(v.unexpected("a label value")),
                };
                check_value(&key, &value, v.position)?;
                BTreeSet::from([value])
            }
            _ => self.value_set(&key, op_tok.position)?,
        };
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    fn value_set(
        &mut self,
        key: &str,
        op_position: usize,
    ) -> Result<BTreeSet<String>, SelectorError> {
        let open = self.next();
        if open.kind != Tok::Open {
            return Err(open.unexpected("'('"));
        }
        let mut values = BTreeSet::new();
        let mut want_value = true;
        loop {
            let t = self.next();
            match (t.kind, want_value) {
                (Tok::Ident | Tok::In | Tok::NotIn, true) => {
                    check_value(key, &t.text, t.position)?;
                    values.insert(t.text);
                    want_value = false;
                }
                // `(a,)` and `(,a)` mean an empty-string member, as in Kubernetes.
                (Tok::Comma, true) => {
                    values.insert(String::new());
                }
                (Tok::Close, true) if !values.is_empty() => {
                    values.insert(String::new());
                    break;
                }
                (Tok::Comma, false) => want_value = true,
                (Tok::Close, _) => break,
                _ => return Err(t.unexpected("a value, ',' or ')'")),
            }
        }
        if values.is_empty() {
            return Err(SelectorError::EmptyValues {
                key: key.to_string(),
                position: op_position,
            });
        }
        Ok(values)
    }
}

/// Validates a `metav1.LabelSelector` into `errs` under `path` (e.g.
/// `spec.selector`), with Kubernetes' messages and field paths.
pub fn validate_label_selector(sel: &LabelSelector, path: &str, errs: &mut FieldErrors) {
    super::validation::validate_labels(&sel.match_labels, &format!("{path}.matchLabels"), errs);
    for (i, e) in sel.match_expressions.iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        match e.operator.as_str() {
            "In" | "NotIn" => {
                if e.values.is_empty() {
                    errs.required(
                        format!("{p}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    );
                }
            }
            "Exists" | "DoesNotExist" => {
                if !e.values.is_empty() {
                    errs.forbidden(
                        format!("{p}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    );
                }
            }
            other => errs.not_supported(
                format!("{p}.operator"),
                other,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            ),
        }
        if let Err(reason) = qualified_name(&e.key) {
            errs.invalid(format!("{p}.key"), &e.key, reason);
        }
        for (j, v) in e.values.iter().enumerate() {
            if let Err(reason) = label_value(v) {
                errs.invalid(format!("{p}.values[{j}]"), v, reason);
            }
        }
    }
}

/// The operator of a field selector term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOperator {
    /// `f=v` or `f==v`.
    Equals,
    /// `f!=v`.
    NotEquals,
}

/// One `field op value` term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

/// A parsed field selector: the AND of its terms. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `?fieldSelector=`. Whitespace around fields and values is kept
    /// out; `\` escapes a following `,`, `=`, `!` or `\`.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for raw in split_unescaped_commas(input) {
            if raw.trim().is_empty() {
                continue;
            }
            terms.push(parse_field_term(&raw)?);
        }
        Ok(FieldSelector { terms })
    }

    /// Whether every term holds. `get` returns a field's value, or `None`
    /// for a field the type does not support; such a term never matches
    /// (check [`FieldSelector::fields`] first to answer 400 instead).
    pub fn matches<F>(&self, get: F) -> bool
    where
        F: Fn(&str) -> Option<String>,
    {
        self.terms.iter().all(|t| match get(&t.field) {
            None => false,
            Some(v) => match t.operator {
                FieldOperator::Equals => v == t.value,
                FieldOperator::NotEquals => v != t.value,
            },
        })
    }

    /// The fields named by the selector, in order, for support checks.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| t.field.as_str())
    }

    /// The value `field` must equal, when the selector pins it exactly
    /// (lets the store narrow a list by namespace or node).
    pub fn requires_exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.operator == FieldOperator::Equals)
            .map(|t| t.value.as_str())
    }

    /// The terms, in the order given.
    pub fn terms(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// True when the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match t.operator {
                FieldOperator::Equals => "=",
                FieldOperator::NotEquals => "!=",
            };
            write!(f, "{}{}{}", t.field, op, escape_field_value(&t.value))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn escape_field_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '\\' | ',' | '=' | '!') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas not preceded by an escaping backslash, keeping escapes.
fn split_unescaped_commas(input: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

fn parse_field_term(term: &str) -> Result<FieldRequirement, SelectorError> {
    let bad = |reason| SelectorError::InvalidFieldTerm {
        term: term.to_string(),
        reason,
    };
    // Find the first unescaped operator.
    let chars: Vec<char> = term.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '!' if chars.get(i + 1) == Some(&'=') => {
                return build_term(&chars[..i], FieldOperator::NotEquals, &chars[i + 2..])
                    .map_err(bad);
            }
            '=' => {
                let skip = if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                return build_term(&chars[..i], FieldOperator::Equals, &chars[i + skip..])
                    .map_err(bad);
            }
            _ => i += 1,
        }
    }
    Err(bad("expected an operator ('=', '==' or '!=')"))
}

fn build_term(
    field: &[char],
    operator: FieldOperator,
    value: &[char],
) -> Result<FieldRequirement, &'static str> {
    let field: String = field.iter().collect::<String>().trim().to_string();
    if field.is_empty() {
        return Err("field name must not be empty");
    }
    if field.contains('\\') {
        return Err("field name must not contain '\\'");
    }
    let mut out = String::new();
    let mut it = value.iter();
    while let Some(&c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some(&n) if matches!(n, '\\' | ',' | '=' | '!') => out.push(n),
                Some(_) => return Err("invalid escape sequence in value"),
                None => return Err("value ends with an unfinished escape"),
            },
            '=' | '!' => return Err("unescaped '=' or '!' in value"),
            _ => out.push(c),
        }
    }
    Ok(FieldRequirement {
        field,
        operator,
        value: out.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::meta::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_renders_canonical_form() {
        let cases = [
            ("", ""),
            ("  ", ""),
            ("app=web", "app=web"),
            ("app==web", "app=web"),
            ("app = web", "app=web"),
            ("app!=web", "app!=web"),
            ("tier in (b, a)", "tier in (a,b)"),
            ("tier notin (x)", "tier notin (x)"),
            ("tier in(a)", "tier in (a)"),
            ("gpu", "gpu"),
            ("!gpu", "!gpu"),
            ("! gpu", "!gpu"),
            ("z=1,a=2", "a=2,z=1"),
            (
                "app=web , !canary,env in (prod,dev)",
                "app=web,!canary,env in (dev,prod)",
            ),
            ("app=", "app="),
            ("app==", "app="),
            ("app.kubernetes.io/name=x", "app.kubernetes.io/name=x"),
            ("in=notin", "in=notin"),
            ("k in (a,)", "k in (,a)"),
            ("a=b,a=b", "a=b"),
        ];
        for (input, want) in cases {
            let sel = LabelSelectorExpr::parse(input)
                .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
            assert_eq!(sel.to_string(), want, "{input:?}");
            // The canonical form parses back to the same selector.
            assert_eq!(LabelSelectorExpr::parse(want).unwrap(), sel, "{want:?}");
        }
    }

    #[test]
    fn parse_errors_name_token_and_position() {
        let cases: &[(&str, &str)] = &[
            ("app=web,", "found 'end of selector' at position 8"),
            (",app", "found ',' at position 0"),
            ("app in", "found 'end of selector' at position 6"),
            ("app in a", "found 'a' at position 7"),
            ("app in (a b)", "found 'b' at position 10"),
            ("app in ()", "values set can't be empty"),
            ("app=web env=x", "found 'env' at position 8"),
            ("app in (a", "found 'end of selector' at position 9"),
            ("app=a=b", "found '=' at position 5"),
            ("a b", "found 'b' at position 2"),
            ("-bad=x", "invalid label key \"-bad\" at position 0"),
            ("app=-x", "invalid label value \"-x\""),
            ("!a=b", "found '=' at position 2"),
            ("(a)", "found '(' at position 0"),
        ];
        for (input, want) in cases {
            let err = LabelSelectorExpr::parse(input)
                .expect_err(&format!("{input:?} should fail"))
                .to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn matching() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("empty", "")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("tier in (front,back)", true),
            ("tier in (back)", false),
            ("missing in (x)", false),
            ("tier notin (back)", true),
            ("tier notin (front)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("empty=", true),
            ("empty", true),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
        ];
        for (input, want) in cases {
            let sel = LabelSelectorExpr::parse(input).unwrap();
            assert_eq!(sel.matches(&l), want, "{input:?}");
        }
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn from_label_selector_matches_and_renders() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![
                req("tier", "In", &["front", "edge"]),
                req("canary", "DoesNotExist", &[]),
                req("zone", "Exists", &[]),
                req("env", "NotIn", &["test"]),
            ],
        };
        let expr = LabelSelectorExpr::from_label_selector(&sel).unwrap();
        assert_eq!(
            expr.to_string(),
            "app=web,!canary,env notin (test),tier in (edge,front),zone"
        );
        assert!(expr.matches(&labels(&[("app", "web"), ("tier", "edge"), ("zone", "a")])));
        assert!(!expr.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!expr.matches(&labels(&[
            ("app", "web"),
            ("tier", "edge"),
            ("zone", "a"),
            ("canary", "1")
        ])));
        // The empty selector matches everything.
        let all = LabelSelectorExpr::from_label_selector(&LabelSelector::default()).unwrap();
        assert!(all.is_empty());
        assert!(all.matches(&labels(&[("x", "y")])));
        assert!(all.matches(&BTreeMap::new()));
        assert_eq!(
            label_selector_string(&sel).as_deref(),
            Some(expr.to_string().as_str())
        );
    }

    #[test]
    fn from_label_selector_errors() {
        let bad = [
            (
                req("a", "Gt", &["1"]),
                "not a valid label selector operator",
            ),
            (req("a", "In", &[]), "must be specified"),
            (req("a", "Exists", &["x"]), "may not be specified"),
            (req("a b", "Exists", &[]), "invalid label key"),
            (req("a", "In", &["-x"]), "invalid label value"),
        ];
        for (r, want) in bad {
            let sel = LabelSelector {
                match_expressions: vec![r.clone()],
                ..Default::default()
            };
            let err = LabelSelectorExpr::from_label_selector(&sel)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{r:?}: {err}");
            assert_eq!(label_selector_string(&sel), None);
        }
    }

    #[test]
    fn validate_label_selector_paths() {
        let sel = LabelSelector {
            match_labels: labels(&[("bad key", "v"), ("ok", "-bad")]),
            match_expressions: vec![
                req("a", "In", &[]),
                req("b", "Exists", &["x"]),
                req("c", "Gt", &["1"]),
                req("-d", "In", &["ok", "-no"]),
            ],
        };
        let mut errs = FieldErrors::default();
        validate_label_selector(&sel, "spec.selector", &mut errs);
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.selector.matchLabels",
                "spec.selector.matchLabels[ok]",
                "spec.selector.matchExpressions[0].values",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].operator",
                "spec.selector.matchExpressions[3].key",
                "spec.selector.matchExpressions[3].values[1]",
            ]
        );
        let mut ok = FieldErrors::default();
        validate_label_selector(
            &LabelSelector {
                match_labels: labels(&[("app", "web")]),
                match_expressions: vec![req("t", "NotIn", &["x"])],
            },
            "spec.selector",
            &mut ok,
        );
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn from_map_is_equality() {
        let expr = LabelSelectorExpr::from_map(&labels(&[("b", "2"), ("a", "1")]));
        assert_eq!(expr.to_string(), "a=1,b=2");
        assert!(expr.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!expr.matches(&labels(&[("a", "1")])));
    }

    #[test]
    fn field_selectors_parse_and_match() {
        let get = |f: &str| -> Option<String> {
            match f {
                "spec.nodeName" => Some("node-1".into()),
                "status.phase" => Some("Running".into()),
                "metadata.name" => Some("a,b=c".into()),
                _ => None,
            }
        };
        let cases = [
            ("", true),
            ("spec.nodeName=node-1", true),
            ("spec.nodeName==node-1", true),
            ("spec.nodeName!=node-1", false),
            ("spec.nodeName=node-2", false),
            ("spec.nodeName = node-1 , status.phase!=Failed", true),
            ("spec.nodeName=node-1,status.phase=Pending", false),
            ("spec.nodeName=", false),
            (r"metadata.name=a\,b\=c", true),
            ("unknown.field=x", false),
        ];
        for (input, want) in cases {
            let sel = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(sel.matches(get), want, "{input:?}");
        }
    }

    #[test]
    fn field_selector_helpers_and_round_trip() {
        let sel = FieldSelector::parse(r"spec.nodeName=n1,status.phase!=Failed,metadata.name=a\,b")
            .unwrap();
        assert_eq!(
            sel.fields().collect::<Vec<_>>(),
            ["spec.nodeName", "status.phase", "metadata.name"]
        );
        assert_eq!(sel.requires_exact("spec.nodeName"), Some("n1"));
        assert_eq!(sel.requires_exact("status.phase"), None);
        assert_eq!(sel.requires_exact("metadata.namespace"), None);
        assert_eq!(sel.terms()[2].value, "a,b");
        let text = sel.to_string();
        assert_eq!(
            text,
            r"spec.nodeName=n1,status.phase!=Failed,metadata.name=a\,b"
        );
        assert_eq!(FieldSelector::parse(&text).unwrap(), sel);
        assert!(FieldSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn field_selector_errors() {
        for (input, want) in [
            ("spec.nodeName", "expected an operator"),
            ("=x", "field name must not be empty"),
            ("a=b=c", "unescaped"),
            (r"a=b\x", "invalid escape"),
            ("a=b\\", "unfinished escape"),
            ("a=x,b", "expected an operator"),
        ] {
            let err = FieldSelector::parse(input)
                .expect_err(&format!("{input:?} should fail"))
                .to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }
}
