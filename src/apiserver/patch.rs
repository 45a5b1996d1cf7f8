//! The three patch formats kubectl sends, as pure functions over JSON values:
//!
//! - JSON merge patch (RFC 7386, `application/merge-patch+json`): [`merge_patch`];
//! - JSON patch (RFC 6902, `application/json-patch+json`): [`json_patch`];
//! - strategic merge patch (`application/strategic-merge-patch+json`), with the
//!   semantics of Kubernetes' apimachinery for built-in types:
//!   [`strategic_merge_patch`], driven by the per-field knowledge in
//!   [`strategic_patch_meta`].
//!
//! [`PatchType`] maps a request's `Content-Type` to a format and
//! [`apply_patch`] dispatches. Every failure is a [`PatchError`] whose message
//! names the problem and where it is, ready for a `Status`; no input panics:
//! merge patch is iterative, strategic merge patch refuses nesting deeper than
//! [`MAX_DEPTH`], and JSON patch bounds its operation count and copied bytes.
//!
//! Strategic merge patch, as implemented here (apimachinery `strategicpatch`):
//! - maps merge recursively; `null` deletes a key;
//! - lists whose field has `patchStrategy: merge` merge: lists of objects by
//!   `patchMergeKey`, lists of primitives as a set union; other lists are
//!   replaced;
//! - `$patch: replace` in a map replaces the map, `$patch: delete` empties it,
//!   `$patch: merge` is the default; in a merging list an element
//!   `{"$patch": "replace"}` replaces the list with the other elements and
//!   `{"<key>": v, "$patch": "delete"}` deletes the element whose merge key is v;
//! - `$deleteFromPrimitiveList/<field>` removes values from a list;
//! - `$setElementOrder/<field>` orders the merged list (items it names in its
//!   order, items only on the server kept in their relative place);
//! - `$retainKeys: [..]` drops every key of the map it does not name, and the
//!   patch may only set keys it names;
//! - without `$setElementOrder`, merged items follow the order of the patch and
//!   new items go before the server's remaining items, as in Kubernetes;
//! - any other key starting with `$` is an error that names it, and values the
//!   patch adds are themselves merged into nothing, so the result never holds a
//!   directive key (Kubernetes copies such values verbatim).
//!
//! Deliberate leniencies, where Kubernetes returns an error: `$patch: merge`
//! is accepted in maps and list elements, and stored list elements without a
//! merge key are kept as they are instead of failing the patch.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

type Object = Map<String, Value>;

/// Deepest nesting of objects and arrays a strategic merge patch may have.
/// It equals serde_json's parser limit, so any document serde_json parsed
/// with its defaults is accepted.
pub const MAX_DEPTH: usize = 128;

/// Most operations one JSON patch may hold (Kubernetes' limit; more is a 413).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Most bytes (estimated as serialized) that the `copy` operations of one JSON
/// patch may duplicate in total; without a bound, a few copies of the root
/// into itself grow the document exponentially.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 8 << 20;

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList/";

/// Why a patch could not be applied.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PatchError {
    #[error("json patch must be a JSON array of operations, got {found}")]
    JsonPatchNotArray { found: &'static str },
    #[error("json patch has {count} operations; at most {limit} are allowed")]
    TooManyOperations { count: usize, limit: usize },
    /// `index` counts from 0 in the patch array.
    #[error("json patch operation {index} ({op} {path}): {problem}")]
    JsonPatchOperation {
        index: usize,
        op: String,
        path: String,
        problem: OpProblem,
    },
    #[error("{format} must be a JSON object, got {found}")]
    PatchNotObject {
        format: &'static str,
        found: &'static str,
    },
    #[error("cannot patch {found}: the object must be a JSON object")]
    TargetNotObject { found: &'static str },
    #[error("strategic merge patch at {path}: unknown directive {directive}")]
    UnknownDirective { path: String, directive: String },
    #[error("strategic merge patch at {path}: invalid {directive}: {reason}")]
    InvalidDirective {
        path: String,
        directive: String,
        reason: String,
    },
    #[error("strategic merge patch at {path}: list element has no merge key {key:?}")]
    MissingMergeKey { path: String, key: &'static str },
    #[error(
        "strategic merge patch at {path}: expected {expected} in this merging list, got {found}"
    )]
    BadListElement {
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "strategic merge patch at {path}: field {field:?} is set but not listed in $retainKeys"
    )]
    NotInRetainKeys { path: String, field: String },
    #[error(
        "strategic merge patch at {path}: the order of the patch list does not match {directive}"
    )]
    OrderMismatch { path: String, directive: String },
    #[error("patch nests deeper than {limit} levels at {path}")]
    TooDeep { path: String, limit: usize },
}

/// What is wrong with one JSON patch operation.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum OpProblem {
    #[error("an operation must be a JSON object")]
    NotAnObject,
    #[error("missing member {0:?}")]
    MissingMember(&'static str),
    #[error("member {0:?} must be a string")]
    MemberNotString(&'static str),
    #[error("unknown operation {0:?}; expected add, remove, replace, move, copy or test")]
    UnknownOp(String),
    #[error("invalid JSON pointer {pointer:?}: {reason}")]
    InvalidPointer {
        pointer: String,
        reason: &'static str,
    },
    #[error("path not found")]
    PathNotFound,
    #[error("from location {from} not found")]
    FromNotFound { from: String },
    #[error("{token:?} is not an array index (0, or a number without leading zeros)")]
    InvalidIndex { token: String },
    #[error("array index {token} is out of range for an array of {len} elements")]
    IndexOutOfRange { token: String, len: usize },
    #[error("cannot move {from} into one of its own children")]
    MoveIntoChild { from: String },
    #[error("cannot remove the whole document")]
    RemoveRoot,
    #[error("test failed: the value at the path differs from the given value")]
    TestFailed,
    #[error("the copy operations duplicate more than {limit} bytes in total")]
    CopyLimitExceeded { limit: usize },
}

impl PatchError {
    /// The HTTP status code of the `Status` the API server answers with,
    /// following Kubernetes: 413 for size limits, 422 when a well-formed patch
    /// cannot be applied to this object, 400 for a malformed patch.
    pub fn http_status(&self) -> u16 {
        match self {
            PatchError::TooManyOperations { .. } => 413,
            PatchError::JsonPatchOperation {
                problem: OpProblem::CopyLimitExceeded { .. },
                ..
            } => 413,
            PatchError::JsonPatchOperation { .. } | PatchError::NotInRetainKeys { .. } => 422,
            PatchError::TargetNotObject { .. } => 500,
            _ => 400,
        }
    }
}

/// The patch formats, by the `Content-Type` kubectl sends them with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
}

impl PatchType {
    /// Recognises a `Content-Type` header value (parameters such as
    /// `; charset=utf-8` are ignored). `None` means 415 Unsupported Media Type.
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("application/json-patch+json") {
            Some(PatchType::Json)
        } else if essence.eq_ignore_ascii_case("application/merge-patch+json") {
            Some(PatchType::Merge)
        } else if essence.eq_ignore_ascii_case("application/strategic-merge-patch+json") {
            Some(PatchType::StrategicMerge)
        } else {
            None
        }
    }

    /// The media type, as Kubernetes spells it.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
        }
    }
}

/// Applies `patch` of the given type to `target`, an object of `kind`.
pub fn apply_patch(
    patch_type: PatchType,
    kind: &str,
    target: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => json_patch(target, patch),
        PatchType::Merge => Ok(merge_patch(target, patch)),
        PatchType::StrategicMerge => strategic_merge_patch(kind, target, patch),
    }
}

// ---------------------------------------------------------------------------
// JSON merge patch (RFC 7386)
// ---------------------------------------------------------------------------

/// Applies a JSON merge patch (RFC 7386): objects merge recursively, `null`
/// removes a member, anything else (arrays included) replaces the target.
///
/// Iterative, so no nesting depth can overflow the stack.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch_root) = patch else {
        return patch.clone();
    };
    // One frame per object being merged; `key` places it back into its parent.
    struct Frame<'p> {
        map: Object,
        entries: serde_json::map::Iter<'p>,
        key: Option<&'p str>,
    }
    let root = match target {
        Value::Object(map) => map.clone(),
        _ => Object::new(),
    };
    let mut current = Frame {
        map: root,
        entries: patch_root.iter(),
        key: None,
    };
    let mut parents: Vec<Frame> = Vec::new();
    loop {
        match current.entries.next() {
            Some((key, Value::Null)) => {
                current.map.shift_remove(key);
            }
            Some((key, Value::Object(sub))) => {
                // A non-object target member counts as `{}` (RFC 7386 §2).
                let child = match current.map.get_mut(key) {
                    Some(Value::Object(existing)) => std::mem::take(existing),
                    _ => Object::new(),
                };
                let frame = Frame {
                    map: child,
                    entries: sub.iter(),
                    key: Some(key),
                };
                parents.push(std::mem::replace(&mut current, frame));
            }
            Some((key, value)) => {
                current.map.insert(key.clone(), value.clone());
            }
            None => match parents.pop() {
                None => return Value::Object(current.map),
                Some(mut parent) => {
                    if let Some(key) = current.key {
                        let merged = Value::Object(current.map);
                        match parent.map.get_mut(key) {
                            Some(slot) => *slot = merged,
                            None => {
                                parent.map.insert(key.to_owned(), merged);
                            }
                        }
                    }
                    current = parent;
                }
            },
        }
    }
}

// ---------------------------------------------------------------------------
// JSON patch (RFC 6902)
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

/// One parsed operation; pointers are already split into reference tokens.
struct Operation<'a> {
    kind: OpKind,
    path: Vec<String>,
    value: Option<&'a Value>,
    from: Option<(&'a str, Vec<String>)>,
}

/// Applies a JSON patch (RFC 6902): an array of `add`, `remove`, `replace`,
/// `move`, `copy` and `test` operations, applied in order, all or nothing.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::JsonPatchNotArray {
            found: type_name(patch),
        });
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            count: ops.len(),
            limit: MAX_JSON_PATCH_OPERATIONS,
        });
    }
    let mut doc = target.clone();
    let mut copied = 0usize;
    for (index, raw) in ops.iter().enumerate() {
        let result =
            parse_operation(raw).and_then(|op| apply_operation(&mut doc, &op, &mut copied));
        if let Err(problem) = result {
            let member = |name: &str| {
                raw.get(name)
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned()
            };
            return Err(PatchError::JsonPatchOperation {
                index,
                op: member("op"),
                path: member("path"),
                problem,
            });
        }
    }
    Ok(doc)
}

fn parse_operation(raw: &Value) -> Result<Operation<'_>, OpProblem> {
    let Value::Object(fields) = raw else {
        return Err(OpProblem::NotAnObject);
    };
    let string = |name: &'static str| -> Result<&str, OpProblem> {
        match fields.get(name) {
            None => Err(OpProblem::MissingMember(name)),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(OpProblem::MemberNotString(name)),
        }
    };
    let kind = match string("op")? {
        "add" => OpKind::Add,
        "remove" => OpKind::Remove,
        "replace" => OpKind::Replace,
        "move" => OpKind::Move,
        "copy" => OpKind::Copy,
        "test" => OpKind::Test,
        other => return Err(OpProblem::UnknownOp(other.to_owned())),
    };
    let path = parse_pointer(string("path")?)?;
    let value = match kind {
        OpKind::Add | OpKind::Replace | OpKind::Test => Some(
            fields
                .get("value")
                .ok_or(OpProblem::MissingMember("value"))?,
        ),
        _ => None,
    };
    let from = match kind {
        OpKind::Move | OpKind::Copy => {
            let raw_from = string("from")?;
            Some((raw_from, parse_pointer(raw_from)?))
        }
        _ => None,
    };
    Ok(Operation {
        kind,
        path,
        value,
        from,
    })
}

/// Splits a JSON pointer (RFC 6901) into unescaped reference tokens.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, OpProblem> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(OpProblem::InvalidPointer {
            pointer: pointer.to_owned(),
            reason: "must be empty or start with '/'",
        });
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => {
                        return Err(OpProblem::InvalidPointer {
                            pointer: pointer.to_owned(),
                            reason: "'~' must be followed by '0' or '1'",
                        });
                    }
                }
            }
            Ok(out)
        })
        .collect()
}

/// Resolves an array reference token; `-` (one past the end) and `len` are
/// only valid where a value is being added.
fn array_index(token: &str, len: usize, adding: bool) -> Result<usize, OpProblem> {
    let out_of_range = || OpProblem::IndexOutOfRange {
        token: token.to_owned(),
        len,
    };
    if token == "-" {
        return if adding { Ok(len) } else { Err(out_of_range()) };
    }
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return Err(OpProblem::InvalidIndex {
            token: token.to_owned(),
        });
    }
    // Too many digits for usize is simply out of range.
    let index = token.parse::<usize>().map_err(|_| out_of_range())?;
    if index < len || (adding && index == len) {
        Ok(index)
    } else {
        Err(out_of_range())
    }
}

fn get_path<'v>(doc: &'v Value, tokens: &[String]) -> Result<&'v Value, OpProblem> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get(token).ok_or(OpProblem::PathNotFound)?,
            Value::Array(items) => {
                let index = array_index(token, items.len(), false)?;
                items.get(index).ok_or(OpProblem::PathNotFound)?
            }
            _ => return Err(OpProblem::PathNotFound),
        };
    }
    Ok(current)
}

fn get_path_mut<'v>(doc: &'v mut Value, tokens: &[String]) -> Result<&'v mut Value, OpProblem> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token).ok_or(OpProblem::PathNotFound)?,
            Value::Array(items) => {
                let index = array_index(token, items.len(), false)?;
                items.get_mut(index).ok_or(OpProblem::PathNotFound)?
            }
            _ => return Err(OpProblem::PathNotFound),
        };
    }
    Ok(current)
}

fn add_at(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), OpProblem> {
    let Some((last, parent_tokens)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_path_mut(doc, parent_tokens)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let index = array_index(last, items.len(), true)?;
            items.insert(index, value);
            Ok(())
        }
        _ => Err(OpProblem::PathNotFound),
    }
}

fn remove_at(doc: &mut Value, tokens: &[String]) -> Result<Value, OpProblem> {
    let Some((last, parent_tokens)) = tokens.split_last() else {
        return Err(OpProblem::RemoveRoot);
    };
    match get_path_mut(doc, parent_tokens)? {
        Value::Object(map) => map.shift_remove(last).ok_or(OpProblem::PathNotFound),
        Value::Array(items) => {
            let index = array_index(last, items.len(), false)?;
            Ok(items.remove(index))
        }
        _ => Err(OpProblem::PathNotFound),
    }
}

fn apply_operation(doc: &mut Value, op: &Operation, copied: &mut usize) -> Result<(), OpProblem> {
    let value = || op.value.cloned().unwrap_or(Value::Null);
    match op.kind {
        OpKind::Add => add_at(doc, &op.path, value()),
        OpKind::Remove => remove_at(doc, &op.path).map(drop),
        OpKind::Replace => {
            *get_path_mut(doc, &op.path)? = value();
            Ok(())
        }
        OpKind::Test => {
            let actual = get_path(doc, &op.path)?;
            match op.value {
                Some(expected) if json_equal(actual, expected) => Ok(()),
                _ => Err(OpProblem::TestFailed),
            }
        }
        OpKind::Move => {
            let Some((raw_from, from)) = &op.from else {
                return Err(OpProblem::MissingMember("from"));
            };
            if op.path.len() > from.len() && op.path.starts_with(from) {
                return Err(OpProblem::MoveIntoChild {
                    from: (*raw_from).to_owned(),
                });
            }
            if *from == op.path {
                return get_path(doc, from)
                    .map(drop)
                    .map_err(from_not_found(raw_from));
            }
            let moved = remove_at(doc, from).map_err(from_not_found(raw_from))?;
            add_at(doc, &op.path, moved)
        }
        OpKind::Copy => {
            let Some((raw_from, from)) = &op.from else {
                return Err(OpProblem::MissingMember("from"));
            };
            let source = get_path(doc, from).map_err(from_not_found(raw_from))?;
            *copied = copied.saturating_add(approximate_size(source));
            if *copied > MAX_JSON_PATCH_COPY_BYTES {
                return Err(OpProblem::CopyLimitExceeded {
                    limit: MAX_JSON_PATCH_COPY_BYTES,
                });
            }
            let duplicate = source.clone();
            add_at(doc, &op.path, duplicate)
        }
    }
}

/// Any failure to read `from` is reported as the `from` location missing.
fn from_not_found(from: &str) -> impl Fn(OpProblem) -> OpProblem + '_ {
    move |_| OpProblem::FromNotFound {
        from: from.to_owned(),
    }
}

/// Roughly the serialized size of a value, computed without recursion.
fn approximate_size(value: &Value) -> usize {
    let mut size = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        size = size.saturating_add(match v {
            Value::Null | Value::Bool(_) | Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                stack.extend(items);
                2 + items.len()
            }
            Value::Object(map) => {
                stack.extend(map.values());
                2 + map.keys().map(|k| k.len() + 4).sum::<usize>()
            }
        });
    }
    size
}

// ---------------------------------------------------------------------------
// JSON equality and element identity
// ---------------------------------------------------------------------------

/// A number in a form where numerically equal JSON numbers compare equal
/// (`1`, `1.0` and `-0.0`/`0` alike), as RFC 6902 `test` requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum NumKey {
    Int(i128),
    Float(u64),
}

fn num_key(n: &serde_json::Number) -> NumKey {
    if let Some(i) = n.as_i64() {
        NumKey::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        NumKey::Int(i128::from(u))
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        // Integral floats within i64's range convert exactly.
        if f.fract() == 0.0 && f.abs() < 9.2e18 {
            NumKey::Int(f as i128)
        } else {
            NumKey::Float(f.to_bits())
        }
    }
}

/// Structural JSON equality (numbers numerically, object members in any
/// order), without recursion.
fn json_equal(a: &Value, b: &Value) -> bool {
    let mut stack = vec![(a, b)];
    while let Some(pair) = stack.pop() {
        match pair {
            (Value::Null, Value::Null) => {}
            (Value::Bool(x), Value::Bool(y)) if x == y => {}
            (Value::Number(x), Value::Number(y)) if num_key(x) == num_key(y) => {}
            (Value::String(x), Value::String(y)) if x == y => {}
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                stack.extend(x.iter().zip(y));
            }
            (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
                for (key, xv) in x {
                    match y.get(key) {
                        Some(yv) => stack.push((xv, yv)),
                        None => return false,
                    }
                }
            }
            _ => return false,
        }
    }
    true
}

/// What identifies an element of a merging list: its merge key's value, or
/// the element itself in a list of primitives. Hashable, so that matching
/// stays linear on long lists.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Ident {
    Null,
    Bool(bool),
    Num(NumKey),
    Str(String),
    /// Objects and arrays, by [`canonical`] serialization (they only appear
    /// as list elements of malformed objects).
    Compound(String),
}

fn ident(value: &Value) -> Ident {
    match value {
        Value::Null => Ident::Null,
        Value::Bool(b) => Ident::Bool(*b),
        Value::Number(n) => Ident::Num(num_key(n)),
        Value::String(s) => Ident::Str(s.clone()),
        other => Ident::Compound(canonical(other)),
    }
}

/// A serialization under which values equal by [`json_equal`] are equal
/// strings (sorted members, numbers by [`NumKey`]), built without recursion.
fn canonical(value: &Value) -> String {
    enum Piece<'v> {
        Value(&'v Value),
        Text(&'static str),
        Key(&'v str),
    }
    let mut out = String::new();
    let mut stack = vec![Piece::Value(value)];
    while let Some(piece) = stack.pop() {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Key(key) => {
                out.push_str(&Value::from(key).to_string());
                out.push(':');
            }
            Piece::Value(Value::Array(items)) => {
                out.push('[');
                stack.push(Piece::Text("]"));
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push(Piece::Value(item));
                    if i > 0 {
                        stack.push(Piece::Text(","));
                    }
                }
            }
            Piece::Value(Value::Object(map)) => {
                out.push('{');
                stack.push(Piece::Text("}"));
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_by(|a, b| b.0.cmp(a.0));
                let last = members.len().saturating_sub(1);
                for (i, (key, item)) in members.into_iter().enumerate() {
                    stack.push(Piece::Value(item));
                    stack.push(Piece::Key(key));
                    if i < last {
                        stack.push(Piece::Text(","));
                    }
                }
            }
            Piece::Value(Value::Number(n)) => out.push_str(&format!("{:?}", num_key(n))),
            Piece::Value(scalar) => out.push_str(&scalar.to_string()),
        }
    }
    out
}

/// The identity of a list element: by merge key for lists of objects (none
/// when the element lacks it), by value for lists of primitives.
fn element_ident(item: &Value, merge_key: Option<&str>) -> Option<Ident> {
    match merge_key {
        Some(key) => item.as_object()?.get(key).map(ident),
        None => Some(ident(item)),
    }
}

/// First position of each identity in a list.
fn positions<'v>(
    items: impl IntoIterator<Item = &'v Value>,
    merge_key: Option<&str>,
) -> HashMap<Ident, usize> {
    let mut out = HashMap::new();
    for (i, item) in items.into_iter().enumerate() {
        if let Some(id) = element_ident(item, merge_key) {
            out.entry(id).or_insert(i);
        }
    }
    out
}

/// Orders a merged list as apimachinery does: items named in `order` sorted
/// by it, items only on the server sorted by their server position, then the
/// two interleaved so that a server item goes first only when it preceded the
/// patch item on the server.
fn reorder(
    merged: Vec<Value>,
    order: &HashMap<Ident, usize>,
    server: &HashMap<Ident, usize>,
    merge_key: Option<&str>,
) -> Vec<Value> {
    let mut named: Vec<(usize, Option<usize>, Value)> = Vec::new();
    let mut server_only: Vec<(usize, Option<usize>, Value)> = Vec::new();
    for item in merged {
        let id = element_ident(&item, merge_key);
        let server_pos = id.as_ref().and_then(|id| server.get(id).copied());
        match id.as_ref().and_then(|id| order.get(id).copied()) {
            Some(pos) => named.push((pos, server_pos, item)),
            None => server_only.push((server_pos.unwrap_or(usize::MAX), server_pos, item)),
        }
    }
    named.sort_by_key(|(pos, _, _)| *pos);
    server_only.sort_by_key(|(pos, _, _)| *pos);

    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = named.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((_, l, _)), Some((_, r, _))) => matches!((l, r), (Some(l), Some(r)) if l < r),
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some((_, _, item)) = next {
            out.push(item);
        }
    }
    out
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------
// Strategic merge patch
// ---------------------------------------------------------------------------

/// Applies a strategic merge patch to `target`, an object of `kind` (`Pod`,
/// `Deployment`, ...). Lists merge where [`strategic_patch_meta`] says so;
/// kinds it does not know get the strategies of `metadata` only.
pub fn strategic_merge_patch(
    kind: &str,
    target: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let Value::Object(target) = target else {
        return Err(PatchError::TargetNotObject {
            found: type_name(target),
        });
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::PatchNotObject {
            format: "a strategic merge patch",
            found: type_name(patch),
        });
    };
    let mut merger = Strategic {
        kind,
        fields: Vec::new(),
        pointer: Vec::new(),
    };
    merger
        .merge_object(target.clone(), patch)
        .map(Value::Object)
}

/// How a patch key is treated.
enum Key<'a> {
    Field(&'a str),
    Patch,
    RetainKeys,
    SetElementOrder(&'a str),
    DeleteFromPrimitiveList(&'a str),
    Unknown,
}

fn classify(key: &str) -> Key<'_> {
    if !key.starts_with('$') {
        return Key::Field(key);
    }
    if key == PATCH_DIRECTIVE {
        return Key::Patch;
    }
    if key == RETAIN_KEYS_DIRECTIVE {
        return Key::RetainKeys;
    }
    match (
        key.strip_prefix(SET_ELEMENT_ORDER_PREFIX),
        key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST_PREFIX),
    ) {
        (Some(field), _) if !field.is_empty() => Key::SetElementOrder(field),
        (_, Some(field)) if !field.is_empty() => Key::DeleteFromPrimitiveList(field),
        _ => Key::Unknown,
    }
}

/// One step of the path from the patch root, for error messages.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

struct PointerDisplay<'s, 'a>(&'s [Step<'a>]);

impl fmt::Display for PointerDisplay<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for step in self.0 {
            match step {
                Step::Key(key) => write!(f, "/{}", key.replace('~', "~0").replace('/', "~1"))?,
                Step::Index(i) => write!(f, "/{i}")?,
            }
        }
        Ok(())
    }
}

/// The state of one strategic merge: where in the object and the patch it is.
struct Strategic<'a> {
    kind: &'a str,
    /// Field names from the object root with list elements transparent: the
    /// key into [`strategic_patch_meta`].
    fields: Vec<&'a str>,
    /// Keys and list indexes from the patch root, for error messages and the
    /// depth bound.
    pointer: Vec<Step<'a>>,
}

impl<'a> Strategic<'a> {
    fn path(&self) -> String {
        PointerDisplay(&self.pointer).to_string()
    }

    fn check_depth(&self) -> Result<(), PatchError> {
        // The container being entered sits one level below its pointer.
        if self.pointer.len() >= MAX_DEPTH {
            return Err(PatchError::TooDeep {
                path: self.path(),
                limit: MAX_DEPTH,
            });
        }
        Ok(())
    }

    fn enter_field(&mut self, field: &'a str) {
        self.fields.push(field);
        self.pointer.push(Step::Key(field));
    }

    fn leave_field(&mut self) {
        self.fields.pop();
        self.pointer.pop();
    }

    fn invalid(&self, directive: &str, reason: impl Into<String>) -> PatchError {
        PatchError::InvalidDirective {
            path: self.path(),
            directive: directive.to_owned(),
            reason: reason.into(),
        }
    }

    /// The strategy of the field at the current position, if it merges.
    fn merging_meta(&self) -> Option<PatchMeta> {
        strategic_patch_meta(self.kind, &self.fields).filter(|meta| meta.merge)
    }

    /// Merges `patch` into `original`, the object at the current position.
    fn merge_object(
        &mut self,
        mut original: Object,
        patch: &'a Object,
    ) -> Result<Object, PatchError> {
        self.check_depth()?;
        if let Some(key) = patch.keys().find(|k| matches!(classify(k), Key::Unknown)) {
            return Err(PatchError::UnknownDirective {
                path: self.path(),
                directive: key.clone(),
            });
        }
        if let Some(directive) = patch.get(PATCH_DIRECTIVE) {
            match directive.as_str() {
                Some("replace") => original.clear(),
                Some("delete") => return Ok(Object::new()),
                Some("merge") => {}
                _ => {
                    return Err(PatchError::UnknownDirective {
                        path: self.path(),
                        directive: format!("{PATCH_DIRECTIVE}: {directive}"),
                    });
                }
            }
        }
        if let Some(retain) = patch.get(RETAIN_KEYS_DIRECTIVE) {
            self.retain_keys(&mut original, patch, retain)?;
        }

        // Lists with an explicit order are merged and ordered together first.
        let mut ordered: HashSet<&str> = HashSet::new();
        for (key, order) in patch {
            if let Key::SetElementOrder(field) = classify(key) {
                self.enter_field(field);
                self.merge_ordered_list(&mut original, patch, key, field, order)?;
                self.leave_field();
                ordered.insert(field);
            }
        }

        for (key, value) in patch {
            let Key::Field(field) = classify(key) else {
                continue;
            };
            if ordered.contains(field) {
                continue;
            }
            if value.is_null() {
                original.shift_remove(field);
                continue;
            }
            self.enter_field(field);
            match original.get_mut(field) {
                Some(slot) => {
                    let old = std::mem::take(slot);
                    *slot = self.merge_value(Some(old), value)?;
                }
                None => {
                    let new = self.merge_value(None, value)?;
                    original.insert(field.to_owned(), new);
                }
            }
            self.leave_field();
        }

        // Deletions go last so that a patch listing a value in both the list
        // and its deletion list ends without it.
        for (key, remove) in patch {
            if let Key::DeleteFromPrimitiveList(field) = classify(key) {
                self.enter_field(field);
                let Value::Array(remove) = remove else {
                    return Err(self.invalid(key, "must be a list"));
                };
                if let Some(Value::Array(items)) = original.get_mut(field) {
                    let doomed: HashSet<Ident> = remove.iter().map(ident).collect();
                    items.retain(|item| !doomed.contains(&ident(item)));
                }
                self.leave_field();
            }
        }
        Ok(original)
    }

    /// `$retainKeys`: the patch may set only the listed keys, and every other
    /// key of the original is dropped.
    fn retain_keys(
        &self,
        original: &mut Object,
        patch: &Object,
        retain: &Value,
    ) -> Result<(), PatchError> {
        let names: Option<HashSet<&str>> = match retain {
            Value::Array(items) => items.iter().map(Value::as_str).collect(),
            _ => None,
        };
        let Some(names) = names else {
            return Err(self.invalid(RETAIN_KEYS_DIRECTIVE, "must be a list of field names"));
        };
        for (key, value) in patch {
            if let Key::Field(field) = classify(key)
                && !value.is_null()
                && !names.contains(field)
            {
                return Err(PatchError::NotInRetainKeys {
                    path: self.path(),
                    field: field.to_owned(),
                });
            }
        }
        original.retain(|key, _| names.contains(key.as_str()));
        Ok(())
    }

    /// Merges `field` (already entered) and orders it by `$setElementOrder`.
    fn merge_ordered_list(
        &mut self,
        original: &mut Object,
        patch: &'a Object,
        directive: &str,
        field: &'a str,
        order: &Value,
    ) -> Result<(), PatchError> {
        let Value::Array(order) = order else {
            return Err(self.invalid(directive, "must be a list"));
        };
        let patch_list = match patch.get(field) {
            None => None,
            Some(Value::Array(items)) => Some(items.as_slice()),
            Some(other) => {
                return Err(self.invalid(
                    directive,
                    format!(
                        "{field:?} in the patch must be a list, not {}",
                        type_name(other)
                    ),
                ));
            }
        };
        let merge_key = self.merging_meta().and_then(|meta| meta.merge_key);
        if let Some(key) = merge_key
            && let Some(i) = order.iter().position(|item| item.get(key).is_none())
        {
            return Err(self.invalid(directive, format!("element {i} has no merge key {key:?}")));
        }
        let order_positions = positions(order, merge_key);
        if let Some(items) = patch_list {
            self.check_patch_order(items, &order_positions, merge_key, directive)?;
        }

        // A stored value that is not a list is overwritten, as the patch says
        // a list goes here.
        let original_list = match original.get_mut(field) {
            Some(Value::Array(items)) => Some(std::mem::take(items)),
            _ => None,
        };
        let server = original_list
            .as_ref()
            .map(|items| positions(items, merge_key))
            .unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(items), Some(p)) => self.merge_list(items, p)?,
            (Some(items), None) => items,
            (None, Some(p)) => self.merge_list(Vec::new(), p)?,
            (None, None) => return Ok(()),
        };
        let ordered = Value::Array(reorder(merged, &order_positions, &server, merge_key));
        match original.get_mut(field) {
            Some(slot) => *slot = ordered,
            None => {
                original.insert(field.to_owned(), ordered);
            }
        }
        Ok(())
    }

    /// The patch list's own items must appear in `$setElementOrder` in the
    /// same relative order (deletions and other directives aside).
    fn check_patch_order(
        &self,
        items: &[Value],
        order: &HashMap<Ident, usize>,
        merge_key: Option<&'static str>,
        directive: &str,
    ) -> Result<(), PatchError> {
        let mut last = None;
        for item in items {
            if item.get(PATCH_DIRECTIVE).is_some() {
                continue;
            }
            let Some(id) = element_ident(item, merge_key) else {
                return Err(PatchError::MissingMergeKey {
                    path: self.path(),
                    key: merge_key.unwrap_or_default(),
                });
            };
            match order.get(&id).copied() {
                Some(pos) if last.is_none_or(|prev| pos > prev) => last = Some(pos),
                _ => {
                    return Err(PatchError::OrderMismatch {
                        path: self.path(),
                        directive: directive.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Merges one field's patch value into its old value (`None` when absent).
    fn merge_value(&mut self, old: Option<Value>, patch: &'a Value) -> Result<Value, PatchError> {
        Ok(match (old, patch) {
            (Some(Value::Object(o)), Value::Object(p)) => Value::Object(self.merge_object(o, p)?),
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(self.merge_list(o, p)?),
            (_, Value::Object(p)) => Value::Object(self.merge_object(Object::new(), p)?),
            (_, Value::Array(p)) => Value::Array(self.merge_list(Vec::new(), p)?),
            (_, scalar) => scalar.clone(),
        })
    }

    /// Merges a list field (already entered) by its strategy.
    fn merge_list(
        &mut self,
        original: Vec<Value>,
        patch: &'a [Value],
    ) -> Result<Vec<Value>, PatchError> {
        self.check_depth()?;
        match self.merging_meta() {
            None => self.replace_list(patch),
            Some(PatchMeta {
                merge_key: None, ..
            }) => self.merge_primitive_list(original, patch),
            Some(PatchMeta {
                merge_key: Some(key),
                ..
            }) => self.merge_keyed_list(original, patch, key),
        }
    }

    /// A replaced list: the patch's elements, themselves merged into nothing
    /// so that no directive survives.
    fn replace_list(&mut self, patch: &'a [Value]) -> Result<Vec<Value>, PatchError> {
        self.check_depth()?;
        let mut out = Vec::with_capacity(patch.len());
        for (i, item) in patch.iter().enumerate() {
            self.pointer.push(Step::Index(i));
            out.push(match item {
                Value::Object(o) => Value::Object(self.merge_object(Object::new(), o)?),
                Value::Array(a) => Value::Array(self.replace_list(a)?),
                scalar => scalar.clone(),
            });
            self.pointer.pop();
        }
        Ok(out)
    }

    /// A merging list of primitives: the union, without duplicates.
    fn merge_primitive_list(
        &mut self,
        original: Vec<Value>,
        patch: &'a [Value],
    ) -> Result<Vec<Value>, PatchError> {
        if let Some((i, item)) = patch
            .iter()
            .enumerate()
            .find(|(_, item)| item.is_object() || item.is_array())
        {
            self.pointer.push(Step::Index(i));
            return Err(PatchError::BadListElement {
                path: self.path(),
                expected: "a string, number or boolean",
                found: type_name(item),
            });
        }
        let server = positions(&original, None);
        let order = positions(patch, None);
        let mut seen = HashSet::new();
        let merged: Vec<Value> = original
            .into_iter()
            .chain(patch.iter().cloned())
            .filter(|item| seen.insert(ident(item)))
            .collect();
        Ok(reorder(merged, &order, &server, None))
    }

    /// A merging list of objects, matched by `key`.
    fn merge_keyed_list(
        &mut self,
        mut original: Vec<Value>,
        patch: &'a [Value],
        key: &'static str,
    ) -> Result<Vec<Value>, PatchError> {
        let mut replace = false;
        let mut doomed: HashSet<Ident> = HashSet::new();
        // Elements to merge, with their index in the patch for error paths.
        let mut plain: Vec<(usize, &'a Value, &'a Object)> = Vec::new();
        for (i, item) in patch.iter().enumerate() {
            self.pointer.push(Step::Index(i));
            let Value::Object(element) = item else {
                return Err(PatchError::BadListElement {
                    path: self.path(),
                    expected: "an object",
                    found: type_name(item),
                });
            };
            let missing_key = || PatchError::MissingMergeKey {
                path: self.path(),
                key,
            };
            match element.get(PATCH_DIRECTIVE) {
                None => {
                    element.get(key).ok_or_else(missing_key)?;
                    plain.push((i, item, element));
                }
                Some(directive) => match directive.as_str() {
                    Some("delete") => {
                        doomed.insert(ident(element.get(key).ok_or_else(missing_key)?));
                    }
                    Some("replace") => replace = true,
                    Some("merge") => {
                        element.get(key).ok_or_else(missing_key)?;
                        plain.push((i, item, element));
                    }
                    _ => {
                        return Err(PatchError::UnknownDirective {
                            path: self.path(),
                            directive: format!("{PATCH_DIRECTIVE}: {directive}"),
                        });
                    }
                },
            }
            self.pointer.pop();
        }

        if !doomed.is_empty() {
            original.retain(|item| {
                element_ident(item, Some(key)).is_none_or(|id| !doomed.contains(&id))
            });
        }
        if replace {
            let mut out = Vec::with_capacity(plain.len());
            for (i, _, element) in plain {
                self.pointer.push(Step::Index(i));
                out.push(Value::Object(self.merge_object(Object::new(), element)?));
                self.pointer.pop();
            }
            return Ok(out);
        }

        let server = positions(&original, Some(key));
        let order = positions(plain.iter().map(|(_, item, _)| *item), Some(key));
        // Where each identity sits now, including elements the patch appends.
        let mut at = server.clone();
        for (i, _, element) in plain {
            self.pointer.push(Step::Index(i));
            let Some(id) = element.get(key).map(ident) else {
                return Err(PatchError::MissingMergeKey {
                    path: self.path(),
                    key,
                });
            };
            match at.get(&id).copied().and_then(|pos| original.get_mut(pos)) {
                Some(slot) => {
                    let old = match std::mem::take(slot) {
                        Value::Object(old) => old,
                        _ => Object::new(),
                    };
                    *slot = Value::Object(self.merge_object(old, element)?);
                }
                None => {
                    let new = self.merge_object(Object::new(), element)?;
                    at.insert(id, original.len());
                    original.push(Value::Object(new));
                }
            }
            self.pointer.pop();
        }
        Ok(reorder(original, &order, &server, Some(key)))
    }
}

// ---------------------------------------------------------------------------
// Schema: which fields merge, by which key
// ---------------------------------------------------------------------------

/// The strategic-merge behaviour of one field, from the Kubernetes Go struct
/// tags (`patchStrategy:"merge,retainKeys" patchMergeKey:"name"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchMeta {
    /// `patchStrategy` includes `merge`: the list merges instead of being
    /// replaced.
    pub merge: bool,
    /// `patchMergeKey`: the member identifying an element of a merging list of
    /// objects; `None` for a merging list of primitives (a set union).
    pub merge_key: Option<&'static str>,
    /// `patchStrategy` includes `retainKeys`: the field's object (or, for a
    /// list, each element) is one of several mutually exclusive shapes, and
    /// kubectl sends `$retainKeys` naming the keys to keep. The server honours
    /// `$retainKeys` wherever it appears; this records where kubectl sends it.
    pub retain_keys: bool,
}

impl PatchMeta {
    const fn merge_by(key: &'static str) -> PatchMeta {
        PatchMeta {
            merge: true,
            merge_key: Some(key),
            retain_keys: false,
        }
    }

    const fn merge_and_retain_by(key: &'static str) -> PatchMeta {
        PatchMeta {
            merge: true,
            merge_key: Some(key),
            retain_keys: true,
        }
    }

    const PRIMITIVE_SET: PatchMeta = PatchMeta {
        merge: true,
        merge_key: None,
        retain_keys: false,
    };

    const RETAIN_KEYS: PatchMeta = PatchMeta {
        merge: false,
        merge_key: None,
        retain_keys: true,
    };
}

/// The kinds whose fields [`strategic_patch_meta`] knows; for others only
/// `metadata` is known (Kubernetes refuses strategic merge patches on custom
/// resources, so the API server may answer 415 for kinds outside this list).
pub const STRATEGIC_MERGE_KINDS: &[&str] = &[
    "Pod",
    "PodTemplate",
    "ReplicationController",
    "Service",
    "Endpoints",
    "Node",
    "Namespace",
    "ConfigMap",
    "Secret",
    "ResourceQuota",
    "LimitRange",
    "Event",
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "ControllerRevision",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "Lease",
    "Module",
    "Scale",
];

/// The strategic-merge behaviour of the field at `path` in an object of
/// `kind`. `path` lists field names from the object root; list elements are
/// transparent, so a container's env is `["spec", "containers", "env"]` in a
/// Pod and `["spec", "template", "spec", "containers", "env"]` in a
/// Deployment. `None` means no strategy: lists are replaced, maps merge.
///
/// Taken from the v1.35 Go types (`k8s.io/api`, `k8s.io/apimachinery`
/// `ObjectMeta`) for every resource wasmk serves; ConfigMap, Secret,
/// Endpoints, ResourceQuota, LimitRange, Event, Lease, ControllerRevision and
/// the wasmk `Module` have no strategies beyond `metadata`.
pub fn strategic_patch_meta(kind: &str, path: &[&str]) -> Option<PatchMeta> {
    if let ["metadata", rest @ ..] = path {
        return object_meta(rest);
    }
    match (kind, path) {
        ("Pod", ["spec", rest @ ..]) => pod_spec(rest),
        ("Pod", ["status", rest @ ..]) => pod_status(rest),
        ("PodTemplate", ["template", rest @ ..]) => pod_template_spec(rest),
        ("Deployment", ["spec", "strategy"]) => Some(PatchMeta::RETAIN_KEYS),
        (
            "Deployment" | "ReplicaSet" | "DaemonSet" | "ReplicationController" | "Job",
            ["spec", "template", rest @ ..],
        ) => pod_template_spec(rest),
        ("CronJob", ["spec", "jobTemplate", "metadata", rest @ ..]) => object_meta(rest),
        ("CronJob", ["spec", "jobTemplate", "spec", "template", rest @ ..]) => {
            pod_template_spec(rest)
        }
        (
            "Deployment"
            | "ReplicaSet"
            | "DaemonSet"
            | "ReplicationController"
            | "Job"
            | "Service"
            | "Node"
            | "Namespace"
            | "HorizontalPodAutoscaler",
            ["status", "conditions"],
        ) => Some(PatchMeta::merge_by("type")),
        ("Service", ["spec", "ports"]) => Some(PatchMeta::merge_by("port")),
        ("Node", ["spec", "podCIDRs"]) => Some(PatchMeta::PRIMITIVE_SET),
        ("Node", ["status", "addresses"]) => Some(PatchMeta::merge_by("type")),
        _ => None,
    }
}

/// `metav1.ObjectMeta`.
fn object_meta(path: &[&str]) -> Option<PatchMeta> {
    match path {
        ["finalizers"] => Some(PatchMeta::PRIMITIVE_SET),
        ["ownerReferences"] => Some(PatchMeta::merge_by("uid")),
        _ => None,
    }
}

/// `PodTemplateSpec`.
fn pod_template_spec(path: &[&str]) -> Option<PatchMeta> {
    match path {
        ["metadata", rest @ ..] => object_meta(rest),
        ["spec", rest @ ..] => pod_spec(rest),
        _ => None,
    }
}

/// `PodSpec`.
fn pod_spec(path: &[&str]) -> Option<PatchMeta> {
    match path {
        ["volumes"] | ["resourceClaims"] => Some(PatchMeta::merge_and_retain_by("name")),
        // Generic ephemeral volumes embed a PVC template with ObjectMeta.
        [
            "volumes",
            "ephemeral",
            "volumeClaimTemplate",
            "metadata",
            rest @ ..,
        ] => object_meta(rest),
        ["containers" | "initContainers" | "ephemeralContainers"]
        | ["imagePullSecrets"]
        | ["schedulingGates"] => Some(PatchMeta::merge_by("name")),
        [
            "containers" | "initContainers" | "ephemeralContainers",
            rest @ ..,
        ] => container(rest),
        ["hostAliases"] => Some(PatchMeta::merge_by("ip")),
        ["topologySpreadConstraints"] => Some(PatchMeta::merge_by("topologyKey")),
        _ => None,
    }
}

/// `Container` and `EphemeralContainerCommon`.
fn container(path: &[&str]) -> Option<PatchMeta> {
    match path {
        ["ports"] => Some(PatchMeta::merge_by("containerPort")),
        ["env"] => Some(PatchMeta::merge_by("name")),
        ["volumeMounts"] => Some(PatchMeta::merge_by("mountPath")),
        ["volumeDevices"] => Some(PatchMeta::merge_by("devicePath")),
        _ => None,
    }
}

/// `PodStatus`.
fn pod_status(path: &[&str]) -> Option<PatchMeta> {
    match path {
        ["conditions"] => Some(PatchMeta::merge_by("type")),
        ["podIPs"] | ["hostIPs"] => Some(PatchMeta::merge_by("ip")),
        ["resourceClaimStatuses"] => Some(PatchMeta::merge_and_retain_by("name")),
        // The status lists themselves are replaced; these apply inside their
        // elements.
        [
            "containerStatuses" | "initContainerStatuses" | "ephemeralContainerStatuses",
            "volumeMounts",
        ] => Some(PatchMeta::merge_by("mountPath")),
        [
            "containerStatuses" | "initContainerStatuses" | "ephemeralContainerStatuses",
            "allocatedResourcesStatus",
        ] => Some(PatchMeta::merge_by("name")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("test JSON parses")
    }

    fn smp(kind: &str, target: &Value, patch: Value) -> Value {
        match strategic_merge_patch(kind, target, &patch) {
            Ok(v) => v,
            Err(e) => panic!("strategic merge patch {patch} failed: {e}"),
        }
    }

    fn at<'v>(value: &'v Value, pointer: &str) -> &'v Value {
        value
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{pointer} missing in {value}"))
    }

    fn names(list: &Value) -> Vec<&str> {
        list.as_array()
            .map(|items| items.iter().filter_map(|i| i["name"].as_str()).collect())
            .unwrap_or_default()
    }

    /// Whether any object key anywhere starts with `$`.
    fn has_directive(value: &Value) -> bool {
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(map) => {
                    if map.keys().any(|k| k.starts_with('$')) {
                        return true;
                    }
                    stack.extend(map.values());
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        false
    }

    /// `{"k": inner}`, built without `json!` (which re-serializes `inner`
    /// recursively).
    fn wrap_object(inner: Value) -> Value {
        let mut map = Object::new();
        map.insert("k".to_owned(), inner);
        Value::Object(map)
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app": "web", "tier": "frontend"},
                "finalizers": ["a.example.com/x", "b.example.com/y"]
            },
            "spec": {
                "replicas": 2,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "hello:v1",
                                "env": [{"name": "FOO", "value": "1"}, {"name": "BAR", "value": "2"}],
                                "ports": [{"containerPort": 8080, "protocol": "TCP"}]
                            },
                            {"name": "sidecar", "image": "logger:v1"}
                        ],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                        "tolerations": [{"key": "a", "operator": "Exists"}]
                    }
                }
            }
        })
    }

    #[test]
    fn equality_is_numeric_and_ignores_member_order() {
        let cases = [
            (json!(1), json!(1.0), true),
            (json!(-0.0), json!(0), true),
            (json!(1), json!("1"), false),
            (json!(1.5), json!(1.5), true),
            (json!(u64::MAX), json!(u64::MAX), true),
            (
                json!({"a": 1, "b": [true, null]}),
                json!({"b": [true, null], "a": 1.0}),
                true,
            ),
            (json!({"a": 1}), json!({"a": 1, "b": 2}), false),
            (json!({"a": 1, "c": 2}), json!({"a": 1, "b": 2}), false),
            (json!([1, 2]), json!([2, 1]), false),
            (json!([]), json!({}), false),
            (json!("x"), json!("x"), true),
        ];
        for (a, b, equal) in cases {
            assert_eq!(json_equal(&a, &b), equal, "{a} vs {b}");
            assert_eq!(ident(&a) == ident(&b), equal, "ident {a} vs {b}");
        }
        assert_eq!(
            canonical(&json!({"b": [1, {"d": "x", "c": null}], "a": true})),
            r#"{"a":true,"b":[Int(1),{"c":null,"d":"x"}]}"#
        );
    }

    // ---- JSON merge patch -------------------------------------------------

    #[test]
    fn merge_patch_rfc7386_appendix_a() {
        let cases = [
            (r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#),
            (r#"{"a":"b","b":"c"}"#, r#"{"a":null}"#, r#"{"b":"c"}"#),
            (r#"{"a":["b"]}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (r#"{"a":"c"}"#, r#"{"a":["b"]}"#, r#"{"a":["b"]}"#),
            (
                r#"{"a":{"b":"c"}}"#,
                r#"{"a":{"b":"d","c":null}}"#,
                r#"{"a":{"b":"d"}}"#,
            ),
            (r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#),
            (r#"["a","b"]"#, r#"["c","d"]"#, r#"["c","d"]"#),
            (r#"{"a":"b"}"#, r#"["c"]"#, r#"["c"]"#),
            (r#"{"a":"foo"}"#, "null", "null"),
            (r#"{"a":"foo"}"#, r#""bar""#, r#""bar""#),
            (r#"{"e":null}"#, r#"{"a":1}"#, r#"{"e":null,"a":1}"#),
            (r#"[1,2]"#, r#"{"a":"b","c":null}"#, r#"{"a":"b"}"#),
            (
                r#"{}"#,
                r#"{"a":{"bb":{"ccc":null}}}"#,
                r#"{"a":{"bb":{}}}"#,
            ),
        ];
        for (target, patch, want) in cases {
            let got = merge_patch(&parse(target), &parse(patch));
            assert_eq!(got, parse(want), "{target} + {patch}");
        }
    }

    #[test]
    fn merge_patch_keeps_member_order_and_scales_deployments() {
        let got = merge_patch(&deployment(), &json!({"spec": {"replicas": 5}}));
        assert_eq!(got["spec"]["replicas"], 5);
        let keys: Vec<&str> = got["spec"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["replicas", "strategy", "template"]);
        // Lists are replaced wholesale, unlike a strategic merge patch.
        let got = merge_patch(
            &deployment(),
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "y"}]}}}}),
        );
        assert_eq!(names(at(&got, "/spec/template/spec/containers")), ["x"]);
    }

    #[test]
    fn merge_patch_handles_nesting_far_beyond_the_strategic_limit() {
        let mut patch = json!("leaf");
        for _ in 0..5_000 {
            patch = wrap_object(patch);
        }
        let got = merge_patch(&json!({"other": 1}), &patch);
        assert_eq!(got["other"], 1);
        let mut node = &got["k"];
        let mut depth = 1;
        while let Some(next) = node.get("k") {
            node = next;
            depth += 1;
        }
        assert_eq!((depth, node), (5_000, &json!("leaf")));
        // Nested values drop recursively; leak this one rather than rely on
        // the test thread's stack.
        std::mem::forget(got);
        std::mem::forget(patch);
    }

    // ---- JSON patch -------------------------------------------------------

    #[test]
    fn json_patch_rfc6902_appendix_a() {
        let ok = [
            (
                r#"{"foo":"bar"}"#,
                r#"[{"op":"add","path":"/baz","value":"qux"}]"#,
                r#"{"baz":"qux","foo":"bar"}"#,
            ),
            (
                r#"{"foo":["bar","baz"]}"#,
                r#"[{"op":"add","path":"/foo/1","value":"qux"}]"#,
                r#"{"foo":["bar","qux","baz"]}"#,
            ),
            (
                r#"{"baz":"qux","foo":"bar"}"#,
                r#"[{"op":"remove","path":"/baz"}]"#,
                r#"{"foo":"bar"}"#,
            ),
            (
                r#"{"foo":["bar","qux","baz"]}"#,
                r#"[{"op":"remove","path":"/foo/1"}]"#,
                r#"{"foo":["bar","baz"]}"#,
            ),
            (
                r#"{"baz":"qux","foo":"bar"}"#,
                r#"[{"op":"replace","path":"/baz","value":"boo"}]"#,
                r#"{"baz":"boo","foo":"bar"}"#,
            ),
            (
                r#"{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}"#,
                r#"[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]"#,
                r#"{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}"#,
            ),
            (
                r#"{"foo":["all","grass","cows","eat"]}"#,
                r#"[{"op":"move","from":"/foo/1","path":"/foo/3"}]"#,
                r#"{"foo":["all","cows","eat","grass"]}"#,
            ),
            (
                r#"{"baz":"qux","foo":["a",2,"c"]}"#,
                r#"[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]"#,
                r#"{"baz":"qux","foo":["a",2,"c"]}"#,
            ),
            (
                r#"{"foo":"bar"}"#,
                r#"[{"op":"add","path":"/child","value":{"grandchild":{}}}]"#,
                r#"{"foo":"bar","child":{"grandchild":{}}}"#,
            ),
            (
                r#"{"foo":"bar"}"#,
                r#"[{"op":"add","path":"/baz","value":"qux","xyz":123}]"#,
                r#"{"foo":"bar","baz":"qux"}"#,
            ),
            (
                r#"{"/":9,"~1":10}"#,
                r#"[{"op":"test","path":"/~01","value":10}]"#,
                r#"{"/":9,"~1":10}"#,
            ),
            (
                r#"{"foo":["bar"]}"#,
                r#"[{"op":"add","path":"/foo/-","value":["abc","def"]}]"#,
                r#"{"foo":["bar",["abc","def"]]}"#,
            ),
            // Beyond the appendix: copy, the root, and numeric equality.
            (
                r#"{"a":{"b":1}}"#,
                r#"[{"op":"copy","from":"/a","path":"/c"},{"op":"replace","path":"/c/b","value":2}]"#,
                r#"{"a":{"b":1},"c":{"b":2}}"#,
            ),
            (
                r#"{"a":1}"#,
                r#"[{"op":"replace","path":"","value":[1]}]"#,
                r#"[1]"#,
            ),
            (
                r#"{"a":1}"#,
                r#"[{"op":"test","path":"/a","value":1.0}]"#,
                r#"{"a":1}"#,
            ),
            (
                r#"{"a":[1]}"#,
                r#"[{"op":"add","path":"/a/1","value":2}]"#,
                r#"{"a":[1,2]}"#,
            ),
            (
                r#"{"a":1}"#,
                r#"[{"op":"move","from":"/a","path":"/a"}]"#,
                r#"{"a":1}"#,
            ),
            (r#"{"a":1}"#, r#"[]"#, r#"{"a":1}"#),
        ];
        for (target, patch, want) in ok {
            let got = json_patch(&parse(target), &parse(patch))
                .unwrap_or_else(|e| panic!("{patch} on {target}: {e}"));
            assert_eq!(got, parse(want), "{patch} on {target}");
        }
    }

    #[test]
    fn json_patch_errors_name_the_operation_and_problem() {
        let target = deployment();
        let cases: &[(&str, OpProblem, &str)] = &[
            (
                r#"[{"op":"test","path":"/spec/replicas","value":2},{"op":"test","path":"/kind","value":"Deployment"},{"op":"replace","path":"/spec/paused","value":true}]"#,
                OpProblem::PathNotFound,
                "json patch operation 2 (replace /spec/paused): path not found",
            ),
            (
                r#"[{"op":"test","path":"/spec/replicas","value":"2"}]"#,
                OpProblem::TestFailed,
                "json patch operation 0 (test /spec/replicas): test failed: the value at the path differs from the given value",
            ),
            (
                r#"[{"op":"add","path":"/spec/missing/child","value":1}]"#,
                OpProblem::PathNotFound,
                "json patch operation 0 (add /spec/missing/child): path not found",
            ),
            (
                r#"[{"op":"add","path":"/spec/replicas/x","value":1}]"#,
                OpProblem::PathNotFound,
                "json patch operation 0 (add /spec/replicas/x): path not found",
            ),
            (
                r#"[{"op":"remove","path":"/spec/template/spec/containers/01"}]"#,
                OpProblem::InvalidIndex { token: "01".into() },
                "json patch operation 0 (remove /spec/template/spec/containers/01): \"01\" is not an array index (0, or a number without leading zeros)",
            ),
            (
                r#"[{"op":"remove","path":"/spec/template/spec/containers/2"}]"#,
                OpProblem::IndexOutOfRange {
                    token: "2".into(),
                    len: 2,
                },
                "json patch operation 0 (remove /spec/template/spec/containers/2): array index 2 is out of range for an array of 2 elements",
            ),
            (
                r#"[{"op":"replace","path":"/spec/template/spec/containers/99999999999999999999999999","value":{}}]"#,
                OpProblem::IndexOutOfRange {
                    token: "99999999999999999999999999".into(),
                    len: 2,
                },
                "json patch operation 0 (replace /spec/template/spec/containers/99999999999999999999999999): array index 99999999999999999999999999 is out of range for an array of 2 elements",
            ),
            (
                r#"[{"op":"replace","path":"/spec/template/spec/containers/-","value":{}}]"#,
                OpProblem::IndexOutOfRange {
                    token: "-".into(),
                    len: 2,
                },
                "json patch operation 0 (replace /spec/template/spec/containers/-): array index - is out of range for an array of 2 elements",
            ),
            (
                r#"[{"op":"add","path":"/spec/template/spec/containers/3","value":{}}]"#,
                OpProblem::IndexOutOfRange {
                    token: "3".into(),
                    len: 2,
                },
                "json patch operation 0 (add /spec/template/spec/containers/3): array index 3 is out of range for an array of 2 elements",
            ),
            (
                r#"[{"op":"add","path":"/spec/template/spec/containers/-1","value":{}}]"#,
                OpProblem::InvalidIndex { token: "-1".into() },
                "json patch operation 0 (add /spec/template/spec/containers/-1): \"-1\" is not an array index (0, or a number without leading zeros)",
            ),
            (
                r#"[{"op":"move","from":"/spec","path":"/spec/template/x"}]"#,
                OpProblem::MoveIntoChild {
                    from: "/spec".into(),
                },
                "json patch operation 0 (move /spec/template/x): cannot move /spec into one of its own children",
            ),
            (
                r#"[{"op":"copy","from":"/nope","path":"/x"}]"#,
                OpProblem::FromNotFound {
                    from: "/nope".into(),
                },
                "json patch operation 0 (copy /x): from location /nope not found",
            ),
            (
                r#"[{"op":"remove","path":""}]"#,
                OpProblem::RemoveRoot,
                "json patch operation 0 (remove ): cannot remove the whole document",
            ),
            (
                r#"[{"op":"merge","path":"/a"}]"#,
                OpProblem::UnknownOp("merge".into()),
                "json patch operation 0 (merge /a): unknown operation \"merge\"; expected add, remove, replace, move, copy or test",
            ),
            (
                r#"[{"path":"/a"}]"#,
                OpProblem::MissingMember("op"),
                "json patch operation 0 (? /a): missing member \"op\"",
            ),
            (
                r#"[{"op":"add","path":"/a"}]"#,
                OpProblem::MissingMember("value"),
                "json patch operation 0 (add /a): missing member \"value\"",
            ),
            (
                r#"[{"op":"move","path":"/a"}]"#,
                OpProblem::MissingMember("from"),
                "json patch operation 0 (move /a): missing member \"from\"",
            ),
            (
                r#"[{"op":"add","path":3,"value":1}]"#,
                OpProblem::MemberNotString("path"),
                "json patch operation 0 (add ?): member \"path\" must be a string",
            ),
            (
                r#"[{"op":"add","path":"a","value":1}]"#,
                OpProblem::InvalidPointer {
                    pointer: "a".into(),
                    reason: "must be empty or start with '/'",
                },
                "json patch operation 0 (add a): invalid JSON pointer \"a\": must be empty or start with '/'",
            ),
            (
                r#"[{"op":"add","path":"/a~2","value":1}]"#,
                OpProblem::InvalidPointer {
                    pointer: "/a~2".into(),
                    reason: "'~' must be followed by '0' or '1'",
                },
                "json patch operation 0 (add /a~2): invalid JSON pointer \"/a~2\": '~' must be followed by '0' or '1'",
            ),
            (
                r#"["add"]"#,
                OpProblem::NotAnObject,
                "json patch operation 0 (? ?): an operation must be a JSON object",
            ),
        ];
        for (patch, want_problem, want_message) in cases {
            let err = json_patch(&target, &parse(patch)).expect_err(patch);
            let PatchError::JsonPatchOperation { problem, .. } = &err else {
                panic!("{patch}: unexpected error {err:?}");
            };
            assert_eq!(problem, want_problem, "{patch}");
            assert_eq!(err.to_string(), *want_message, "{patch}");
            assert_eq!(err.http_status(), 422, "{patch}");
        }
    }

    #[test]
    fn json_patch_rejects_non_arrays_and_bounds_work() {
        let err = json_patch(&json!({}), &json!({"op": "add"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json patch must be a JSON array of operations, got an object"
        );
        assert_eq!(err.http_status(), 400);

        let ops = vec![json!({"op": "test", "path": ""}); MAX_JSON_PATCH_OPERATIONS + 1];
        let err = json_patch(&json!({}), &Value::Array(ops)).unwrap_err();
        assert_eq!(
            err,
            PatchError::TooManyOperations {
                count: MAX_JSON_PATCH_OPERATIONS + 1,
                limit: MAX_JSON_PATCH_OPERATIONS
            }
        );
        assert_eq!(err.http_status(), 413);

        // Appending the root array to itself doubles the document each time.
        let doubling = vec![json!({"op": "copy", "from": "", "path": "/-"}); 64];
        let err = json_patch(&json!(["0123456789"]), &Value::Array(doubling)).unwrap_err();
        let PatchError::JsonPatchOperation { problem, index, .. } = &err else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(
            problem,
            &OpProblem::CopyLimitExceeded {
                limit: MAX_JSON_PATCH_COPY_BYTES
            }
        );
        assert!(*index > 10 && *index < 64, "stopped at {index}");
        assert_eq!(err.http_status(), 413);
    }

    #[test]
    fn json_patch_is_all_or_nothing_and_leaves_the_target_alone() {
        let target = json!({"a": 1});
        let patch = json!([
            {"op": "replace", "path": "/a", "value": 2},
            {"op": "test", "path": "/a", "value": 1}
        ]);
        assert!(json_patch(&target, &patch).is_err());
        assert_eq!(target, json!({"a": 1}));
    }

    #[test]
    fn json_patch_as_kubectl_rollout_undo_sends_it() {
        let mut old_template = deployment()["spec"]["template"].clone();
        old_template["spec"]["containers"][0]["image"] = json!("hello:v0");
        let patch = json!([
            {"op": "replace", "path": "/spec/template", "value": old_template},
            {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "1"}}
        ]);
        // annotations does not exist yet: replace needs an existing target.
        let err = json_patch(&deployment(), &patch).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json patch operation 1 (replace /metadata/annotations): path not found"
        );
        let mut target = deployment();
        target["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "2"});
        let got = json_patch(&target, &patch).unwrap();
        assert_eq!(
            at(&got, "/spec/template/spec/containers/0/image"),
            "hello:v0"
        );
        assert_eq!(
            at(
                &got,
                "/metadata/annotations/deployment.kubernetes.io~1revision"
            ),
            "1"
        );
    }

    // ---- strategic merge patch --------------------------------------------

    #[test]
    fn kubectl_set_image() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"image": "hello:v2", "name": "web"}]
        }}}});
        let got = smp("Deployment", &deployment(), patch);
        let containers = at(&got, "/spec/template/spec/containers");
        assert_eq!(names(containers), ["web", "sidecar"]);
        assert_eq!(containers[0]["image"], "hello:v2");
        assert_eq!(
            containers[0]["env"],
            deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
        );
        assert_eq!(
            containers[1],
            json!({"name": "sidecar", "image": "logger:v1"})
        );
        assert!(!has_directive(&got));
    }

    #[test]
    fn env_var_deleted_with_patch_delete() {
        // `kubectl set env deployment/web FOO-`
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "BAR"}],
                "env": [{"$patch": "delete", "name": "FOO"}],
                "name": "web"
            }]
        }}}});
        let got = smp("Deployment", &deployment(), patch);
        assert_eq!(
            at(&got, "/spec/template/spec/containers/0/env"),
            &json!([{"name": "BAR", "value": "2"}])
        );
        assert!(!has_directive(&got));
    }

    #[test]
    fn set_element_order_reorders_without_changing_items() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]
        }}}});
        let got = smp("Deployment", &deployment(), patch);
        let containers = at(&got, "/spec/template/spec/containers");
        assert_eq!(names(containers), ["sidecar", "web"]);
        assert_eq!(containers[1]["image"], "hello:v1");
    }

    #[test]
    fn set_element_order_keeps_server_only_items_in_place() {
        let pod = json!({"spec": {"containers": [
            {"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}
        ]}});
        // The client knew only a and c, and swapped them. Server-only items
        // go before a named item that followed them on the server: b (server
        // position 1) precedes c (2), d (3) follows everything.
        let patch =
            json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}});
        let got = smp("Pod", &pod, patch);
        assert_eq!(names(at(&got, "/spec/containers")), ["b", "c", "a", "d"]);
    }

    #[test]
    fn set_element_order_must_agree_with_the_patch_list() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"name": "sidecar", "image": "x"}, {"name": "web", "image": "y"}]
        }}}});
        let err = strategic_merge_patch("Deployment", &deployment(), &patch).unwrap_err();
        assert_eq!(
            err.to_string(),
            "strategic merge patch at /spec/template/spec/containers: the order of the patch list does not match $setElementOrder/containers"
        );
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"image": "web"}]
        }}}});
        let err = strategic_merge_patch("Deployment", &deployment(), &patch).unwrap_err();
        assert_eq!(
            err.to_string(),
            "strategic merge patch at /spec/template/spec/containers: invalid $setElementOrder/containers: element 0 has no merge key \"name\""
        );
    }

    #[test]
    fn label_removed_by_null() {
        // `kubectl label deployment web tier-`
        let got = smp(
            "Deployment",
            &deployment(),
            json!({"metadata": {"labels": {"tier": null}}}),
        );
        assert_eq!(at(&got, "/metadata/labels"), &json!({"app": "web"}));
        // A null for a key that is not there is ignored, not stored.
        let got = smp(
            "Deployment",
            &deployment(),
            json!({"metadata": {"annotations": {"x": null}}}),
        );
        assert_eq!(at(&got, "/metadata/annotations"), &json!({}));
    }

    #[test]
    fn finalizers_union_and_delete_from_primitive_list() {
        let got = smp(
            "Deployment",
            &deployment(),
            json!({"metadata": {"finalizers": ["c.example.com/z", "b.example.com/y"]}}),
        );
        // Union without duplicates; values new to the server go first, as in
        // Kubernetes.
        assert_eq!(
            at(&got, "/metadata/finalizers"),
            &json!(["c.example.com/z", "a.example.com/x", "b.example.com/y"])
        );
        // What `kubectl edit` sends when one finalizer is swapped for another.
        let patch = json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["a.example.com/x"],
            "$setElementOrder/finalizers": ["b.example.com/y", "c.example.com/z"],
            "finalizers": ["c.example.com/z"]
        }});
        let got = smp("Deployment", &deployment(), patch);
        assert_eq!(
            at(&got, "/metadata/finalizers"),
            &json!(["b.example.com/y", "c.example.com/z"])
        );
        let got = smp(
            "Pod",
            &json!({"metadata": {"finalizers": ["x", "y"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x", "absent"]}}),
        );
        assert_eq!(at(&got, "/metadata/finalizers"), &json!(["y"]));
        // Deleting from a list the object does not have is a no-op.
        let got = smp(
            "Pod",
            &json!({"metadata": {}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
        );
        assert_eq!(got, json!({"metadata": {}}));
    }

    #[test]
    fn retain_keys_switches_deployment_strategy_to_recreate() {
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let got = smp("Deployment", &deployment(), patch);
        assert_eq!(at(&got, "/spec/strategy"), &json!({"type": "Recreate"}));
        // Without the directive the stale rollingUpdate would survive.
        let got = smp(
            "Deployment",
            &deployment(),
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        );
        assert!(got["spec"]["strategy"].get("rollingUpdate").is_some());

        let bad = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}});
        let err = strategic_merge_patch("Deployment", &deployment(), &bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            "strategic merge patch at /spec/strategy: field \"rollingUpdate\" is set but not listed in $retainKeys"
        );
        assert_eq!(err.http_status(), 422);
        let bad = json!({"spec": {"strategy": {"$retainKeys": "type"}}});
        let err = strategic_merge_patch("Deployment", &deployment(), &bad).unwrap_err();
        assert!(
            matches!(err, PatchError::InvalidDirective { ref directive, .. } if directive == "$retainKeys"),
            "{err}"
        );
    }

    #[test]
    fn retain_keys_in_volume_items_switches_the_volume_source() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/volumes": [{"name": "data"}],
            "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "name": "data"}]
        }}}});
        let got = smp("Deployment", &deployment(), patch);
        assert_eq!(
            at(&got, "/spec/template/spec/volumes"),
            &json!([{"name": "data", "configMap": {"name": "cfg"}}])
        );
    }

    #[test]
    fn kubectl_apply_three_way_patch_removing_a_container() {
        // last-applied had web and sidecar, the new manifest only web: the
        // deletion comes from last-applied vs new, the order from live vs new.
        let patch = json!({
            "metadata": {"annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}"
            }},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"$patch": "delete", "name": "sidecar"}]
            }}}
        });
        let got = smp("Deployment", &deployment(), patch);
        let containers = at(&got, "/spec/template/spec/containers");
        assert_eq!(names(containers), ["web"]);
        assert_eq!(
            containers[0],
            deployment()["spec"]["template"]["spec"]["containers"][0]
        );
        assert_eq!(
            at(
                &got,
                "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"
            ),
            "{\"kind\":\"Deployment\"}"
        );
        assert!(!has_directive(&got));
    }

    #[test]
    fn new_list_items_without_an_order_go_first() {
        // The kubectl patch documentation's example: the added container
        // is listed before the existing ones.
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "redis", "image": "redis"}]}}}});
        let got = smp("Deployment", &deployment(), patch);
        assert_eq!(
            names(at(&got, "/spec/template/spec/containers")),
            ["redis", "web", "sidecar"]
        );
        // Existing items named by the patch keep their server position.
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "logger:v2"}]}}}});
        let got = smp("Deployment", &deployment(), patch);
        assert_eq!(
            names(at(&got, "/spec/template/spec/containers")),
            ["web", "sidecar"]
        );
        assert_eq!(
            at(&got, "/spec/template/spec/containers/1/image"),
            "logger:v2"
        );
    }

    #[test]
    fn patch_replace_in_lists_and_maps() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"}, {"name": "only", "image": "x"}
        ]}}}});
        let got = smp("Deployment", &deployment(), patch);
        assert_eq!(
            at(&got, "/spec/template/spec/containers"),
            &json!([{"name": "only", "image": "x"}])
        );

        // DaemonSet rollback: the ControllerRevision's data replaces the template.
        let daemonset = json!({"kind": "DaemonSet", "spec": {"template": {
            "metadata": {"labels": {"app": "d"}, "annotations": {"x": "y"}},
            "spec": {"containers": [{"name": "c", "image": "new"}], "nodeSelector": {"a": "b"}}
        }}});
        let revision = json!({"spec": {"template": {
            "$patch": "replace",
            "metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "old"}]}
        }}});
        let got = smp("DaemonSet", &daemonset, revision);
        assert_eq!(
            at(&got, "/spec/template"),
            &json!({"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "old"}]}})
        );
        // `$patch: delete` empties a map, `$patch: merge` is the default.
        let got = smp(
            "Deployment",
            &deployment(),
            json!({"spec": {"strategy": {"$patch": "delete"}}}),
        );
        assert_eq!(at(&got, "/spec/strategy"), &json!({}));
        let got = smp(
            "Deployment",
            &deployment(),
            json!({"spec": {"strategy": {"$patch": "merge", "type": "Recreate"}}}),
        );
        assert_eq!(at(&got, "/spec/strategy/rollingUpdate/maxSurge"), "25%");
    }

    #[test]
    fn lists_without_a_strategy_are_replaced() {
        let patch = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}});
        let got = smp("Deployment", &deployment(), patch);
        assert_eq!(
            at(&got, "/spec/template/spec/tolerations"),
            &json!([{"key": "b", "operator": "Exists"}])
        );
        // Replaced lists are not merged even when their items have a name.
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "items": [{"name": "a", "v": 1}]});
        let got = smp("ConfigMap", &cm, json!({"items": [{"name": "a"}]}));
        assert_eq!(got["items"], json!([{"name": "a"}]));
    }

    #[test]
    fn merge_keys_other_than_name() {
        // 8080.0 matches 8080: merge keys compare as JSON numbers. Items the
        // patch names follow the patch's order.
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "ports": [
            {"containerPort": 9090}, {"containerPort": 8080.0, "name": "http"}
        ]}]}}}});
        let got = smp("Deployment", &deployment(), patch);
        assert_eq!(
            at(&got, "/spec/template/spec/containers/0/ports"),
            &json!([{"containerPort": 9090}, {"containerPort": 8080.0, "protocol": "TCP", "name": "http"}])
        );

        let service = json!({"kind": "Service", "spec": {"ports": [
            {"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}
        ]}});
        let got = smp(
            "Service",
            &service,
            json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}),
        );
        assert_eq!(
            got["spec"]["ports"],
            json!([{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 9443}])
        );

        let pod = json!({"metadata": {"ownerReferences": [{"uid": "u1", "kind": "ReplicaSet", "name": "rs"}]}});
        let patch = json!({"metadata": {"ownerReferences": [
            {"uid": "u1", "controller": true}, {"uid": "u2", "kind": "Job", "name": "j"}
        ]}});
        let got = smp("Pod", &pod, patch);
        assert_eq!(
            got["metadata"]["ownerReferences"],
            json!([
                {"uid": "u1", "kind": "ReplicaSet", "name": "rs", "controller": true},
                {"uid": "u2", "kind": "Job", "name": "j"}
            ])
        );
    }

    #[test]
    fn status_lists_merge_by_type() {
        let pod = json!({"kind": "Pod", "status": {"phase": "Pending", "conditions": [
            {"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}
        ], "podIPs": [{"ip": "10.0.0.1"}]}});
        let patch = json!({"status": {
            "$setElementOrder/conditions": [{"type": "PodScheduled"}, {"type": "Ready"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "phase": "Running"
        }});
        let got = smp("Pod", &pod, patch);
        assert_eq!(
            got["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}])
        );
        assert_eq!(got["status"]["phase"], "Running");

        let node = json!({"kind": "Node", "spec": {"podCIDRs": ["10.1.0.0/24"]}, "status": {
            "addresses": [{"type": "InternalIP", "address": "192.168.0.2"}, {"type": "Hostname", "address": "n1"}]
        }});
        let patch = json!({"spec": {"podCIDRs": ["fd00::/64"]}, "status": {
            "addresses": [{"type": "InternalIP", "address": "192.168.0.3"}]
        }});
        let got = smp("Node", &node, patch);
        assert_eq!(got["spec"]["podCIDRs"], json!(["fd00::/64", "10.1.0.0/24"]));
        assert_eq!(
            got["status"]["addresses"],
            json!([{"type": "InternalIP", "address": "192.168.0.3"}, {"type": "Hostname", "address": "n1"}])
        );
    }

    #[test]
    fn rollout_restart_pause_and_scale_patches() {
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"
        }}}}});
        let got = smp("Deployment", &deployment(), patch);
        assert_eq!(
            at(&got, "/spec/template/metadata"),
            &json!({"labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}})
        );
        assert_eq!(
            at(&got, "/spec/template/spec"),
            &deployment()["spec"]["template"]["spec"]
        );
        let got = smp(
            "Deployment",
            &deployment(),
            json!({"spec": {"paused": true, "replicas": 0}}),
        );
        assert_eq!(
            (&got["spec"]["paused"], &got["spec"]["replicas"]),
            (&json!(true), &json!(0))
        );
    }

    #[test]
    fn cron_job_templates_merge_containers() {
        let cron = json!({"kind": "CronJob", "spec": {"jobTemplate": {
            "metadata": {"finalizers": ["f"]},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}}}
        }}});
        let patch = json!({"spec": {"jobTemplate": {
            "metadata": {"finalizers": ["g"]},
            "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "3"}]}}}
        }}});
        let got = smp("CronJob", &cron, patch);
        assert_eq!(
            at(&got, "/spec/jobTemplate/spec/template/spec/containers"),
            &json!([{"name": "a", "image": "1"}, {"name": "b", "image": "3"}])
        );
        assert_eq!(
            at(&got, "/spec/jobTemplate/metadata/finalizers"),
            &json!(["g", "f"])
        );
    }

    #[test]
    fn values_the_patch_adds_carry_no_directives_or_nulls() {
        let pod = json!({"kind": "Pod", "spec": {"containers": [{"name": "main"}]}});
        let patch = json!({"spec": {
            "initContainers": [{"name": "a", "image": "x", "command": null}, {"name": "b", "$patch": "delete"}],
            "volumes": [{"name": "v", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}],
            "$setElementOrder/ephemeralContainers": [{"name": "e"}],
            "ephemeralContainers": [{"name": "e", "env": [{"name": "K", "$patch": "delete"}, {"name": "L", "value": "1"}]}],
            "tolerations": [{"key": "t", "$patch": "merge", "value": null}],
            "affinity": {"$patch": "replace", "nodeAffinity": {}}
        }});
        let got = smp("Pod", &pod, patch);
        assert_eq!(
            got["spec"],
            json!({
                "containers": [{"name": "main"}],
                "initContainers": [{"name": "a", "image": "x"}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "ephemeralContainers": [{"name": "e", "env": [{"name": "L", "value": "1"}]}],
                "tolerations": [{"key": "t"}],
                "affinity": {"nodeAffinity": {}}
            })
        );
        assert!(!has_directive(&got));
    }

    #[test]
    fn strategic_errors_name_the_problem_and_place() {
        let d = deployment();
        let cases = [
            (
                json!({"metadata": {"$bogus": 1}}),
                "strategic merge patch at /metadata: unknown directive $bogus",
            ),
            (
                json!({"spec": {"strategy": {"$patch": "frobnicate"}}}),
                "strategic merge patch at /spec/strategy: unknown directive $patch: \"frobnicate\"",
            ),
            (
                json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "$patch": 1}]}}}}),
                "strategic merge patch at /spec/template/spec/containers/0: unknown directive $patch: 1",
            ),
            (
                json!({"$setElementOrder/": []}),
                "strategic merge patch at (root): unknown directive $setElementOrder/",
            ),
            (
                json!({"spec": {"template": {"spec": {"containers": [{"name": "web"}, {"image": "x"}]}}}}),
                "strategic merge patch at /spec/template/spec/containers/1: list element has no merge key \"name\"",
            ),
            (
                json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}),
                "strategic merge patch at /spec/template/spec/containers/0: list element has no merge key \"name\"",
            ),
            (
                json!({"spec": {"template": {"spec": {"containers": ["web"]}}}}),
                "strategic merge patch at /spec/template/spec/containers/0: expected an object in this merging list, got a string",
            ),
            (
                json!({"metadata": {"finalizers": ["a", {"b": 1}]}}),
                "strategic merge patch at /metadata/finalizers/1: expected a string, number or boolean in this merging list, got an object",
            ),
            (
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
                "strategic merge patch at /metadata/finalizers: invalid $deleteFromPrimitiveList/finalizers: must be a list",
            ),
            (
                json!({"metadata": {"$setElementOrder/finalizers": ["a"], "finalizers": "a"}}),
                "strategic merge patch at /metadata/finalizers: invalid $setElementOrder/finalizers: \"finalizers\" in the patch must be a list, not a string",
            ),
        ];
        for (patch, want) in cases {
            let err =
                strategic_merge_patch("Deployment", &d, &patch).expect_err(&patch.to_string());
            assert_eq!(err.to_string(), want, "{patch}");
            assert_eq!(err.http_status(), 400, "{patch}");
        }

        let err = strategic_merge_patch("Pod", &d, &json!([1])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a strategic merge patch must be a JSON object, got an array"
        );
        let err = strategic_merge_patch("Pod", &json!("x"), &json!({})).unwrap_err();
        assert_eq!(err.http_status(), 500);
    }

    #[test]
    fn strategic_patch_depth_is_bounded() {
        fn nested(depth: usize, leaf: Value) -> Value {
            let mut v = leaf;
            for _ in 0..depth {
                v = wrap_object(v);
            }
            v
        }
        let target = json!({"kind": "ConfigMap"});
        // The deepest document serde_json parses is accepted.
        let parseable = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        let list: Value = serde_json::from_str(&parseable).unwrap();
        let err = serde_json::from_str::<Value>(&format!("[{parseable}]")).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
        let got = strategic_merge_patch("ConfigMap", &target, &json!({"data": list})).unwrap();
        assert_eq!(got["data"], list);

        let shallow = nested(MAX_DEPTH, json!(1));
        let got = strategic_merge_patch("ConfigMap", &target, &shallow).unwrap();
        assert_eq!(got["k"]["k"]["k"], shallow["k"]["k"]["k"]);

        let deep = nested(MAX_DEPTH + 1, json!(1));
        let err = strategic_merge_patch("ConfigMap", &target, &deep).unwrap_err();
        assert!(
            matches!(
                err,
                PatchError::TooDeep {
                    limit: MAX_DEPTH,
                    ..
                }
            ),
            "{err}"
        );

        let mut deep_list = json!(1);
        for _ in 0..2_000 {
            deep_list = Value::Array(vec![deep_list]);
        }
        let deep_list = wrap_object(deep_list);
        let err = strategic_merge_patch("ConfigMap", &target, &deep_list).unwrap_err();
        assert!(matches!(err, PatchError::TooDeep { .. }), "{err}");
        std::mem::forget(deep_list);
    }

    #[test]
    fn patch_meta_matches_the_kubernetes_struct_tags() {
        let merge_by = PatchMeta::merge_by;
        let cases: &[(&str, &[&str], Option<PatchMeta>)] = &[
            ("Pod", &["spec", "containers"], Some(merge_by("name"))),
            (
                "Pod",
                &["spec", "initContainers", "env"],
                Some(merge_by("name")),
            ),
            (
                "Pod",
                &["spec", "ephemeralContainers", "volumeDevices"],
                Some(merge_by("devicePath")),
            ),
            (
                "Pod",
                &["spec", "containers", "volumeMounts"],
                Some(merge_by("mountPath")),
            ),
            (
                "Pod",
                &["spec", "containers", "ports"],
                Some(merge_by("containerPort")),
            ),
            ("Pod", &["spec", "containers", "envFrom"], None),
            ("Pod", &["spec", "containers", "args"], None),
            (
                "Pod",
                &["spec", "volumes"],
                Some(PatchMeta::merge_and_retain_by("name")),
            ),
            (
                "Pod",
                &["spec", "resourceClaims"],
                Some(PatchMeta::merge_and_retain_by("name")),
            ),
            ("Pod", &["spec", "imagePullSecrets"], Some(merge_by("name"))),
            ("Pod", &["spec", "hostAliases"], Some(merge_by("ip"))),
            (
                "Pod",
                &["spec", "topologySpreadConstraints"],
                Some(merge_by("topologyKey")),
            ),
            ("Pod", &["spec", "schedulingGates"], Some(merge_by("name"))),
            ("Pod", &["spec", "readinessGates"], None),
            ("Pod", &["spec", "tolerations"], None),
            ("Pod", &["status", "conditions"], Some(merge_by("type"))),
            ("Pod", &["status", "podIPs"], Some(merge_by("ip"))),
            ("Pod", &["status", "hostIPs"], Some(merge_by("ip"))),
            ("Pod", &["status", "containerStatuses"], None),
            (
                "Pod",
                &["status", "containerStatuses", "volumeMounts"],
                Some(merge_by("mountPath")),
            ),
            (
                "Pod",
                &["metadata", "finalizers"],
                Some(PatchMeta::PRIMITIVE_SET),
            ),
            (
                "Pod",
                &["metadata", "ownerReferences"],
                Some(merge_by("uid")),
            ),
            ("Pod", &["metadata", "managedFields"], None),
            (
                "PodTemplate",
                &["template", "spec", "containers"],
                Some(merge_by("name")),
            ),
            (
                "Deployment",
                &["spec", "strategy"],
                Some(PatchMeta::RETAIN_KEYS),
            ),
            (
                "Deployment",
                &["spec", "template", "spec", "containers", "env"],
                Some(merge_by("name")),
            ),
            (
                "Deployment",
                &["spec", "template", "metadata", "finalizers"],
                Some(PatchMeta::PRIMITIVE_SET),
            ),
            (
                "Deployment",
                &["status", "conditions"],
                Some(merge_by("type")),
            ),
            ("DaemonSet", &["spec", "updateStrategy"], None),
            (
                "DaemonSet",
                &["spec", "template", "spec", "volumes"],
                Some(PatchMeta::merge_and_retain_by("name")),
            ),
            (
                "ReplicaSet",
                &["status", "conditions"],
                Some(merge_by("type")),
            ),
            (
                "ReplicationController",
                &["spec", "template", "spec", "containers"],
                Some(merge_by("name")),
            ),
            (
                "Job",
                &["spec", "template", "spec", "containers"],
                Some(merge_by("name")),
            ),
            ("Job", &["status", "conditions"], Some(merge_by("type"))),
            (
                "CronJob",
                &[
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "initContainers",
                ],
                Some(merge_by("name")),
            ),
            ("CronJob", &["status", "active"], None),
            ("Service", &["spec", "ports"], Some(merge_by("port"))),
            ("Service", &["status", "conditions"], Some(merge_by("type"))),
            ("Service", &["spec", "externalIPs"], None),
            (
                "Node",
                &["spec", "podCIDRs"],
                Some(PatchMeta::PRIMITIVE_SET),
            ),
            ("Node", &["spec", "taints"], None),
            ("Node", &["status", "conditions"], Some(merge_by("type"))),
            ("Node", &["status", "addresses"], Some(merge_by("type"))),
            (
                "Namespace",
                &["status", "conditions"],
                Some(merge_by("type")),
            ),
            ("Namespace", &["spec", "finalizers"], None),
            (
                "HorizontalPodAutoscaler",
                &["status", "conditions"],
                Some(merge_by("type")),
            ),
            ("HorizontalPodAutoscaler", &["spec", "metrics"], None),
            ("Endpoints", &["subsets"], None),
            (
                "ConfigMap",
                &["metadata", "ownerReferences"],
                Some(merge_by("uid")),
            ),
            (
                "Lease",
                &["metadata", "finalizers"],
                Some(PatchMeta::PRIMITIVE_SET),
            ),
            (
                "Module",
                &["metadata", "finalizers"],
                Some(PatchMeta::PRIMITIVE_SET),
            ),
            ("SomethingElse", &["spec", "containers"], None),
        ];
        for (kind, path, want) in cases {
            assert_eq!(strategic_patch_meta(kind, path), *want, "{kind} {path:?}");
        }
    }

    #[test]
    fn content_types_select_the_format() {
        let cases = [
            ("application/json-patch+json", Some(PatchType::Json)),
            ("application/merge-patch+json", Some(PatchType::Merge)),
            (
                "application/strategic-merge-patch+json; charset=utf-8",
                Some(PatchType::StrategicMerge),
            ),
            ("Application/Merge-Patch+JSON", Some(PatchType::Merge)),
            ("application/apply-patch+yaml", None),
            ("application/json", None),
            ("", None),
        ];
        for (content_type, want) in cases {
            assert_eq!(
                PatchType::from_content_type(content_type),
                want,
                "{content_type}"
            );
            if let Some(t) = want {
                assert_eq!(PatchType::from_content_type(t.content_type()), Some(t));
            }
        }
        let scaled = apply_patch(
            PatchType::Merge,
            "Deployment",
            &deployment(),
            &json!({"spec": {"replicas": 3}}),
        )
        .unwrap();
        assert_eq!(scaled["spec"]["replicas"], 3);
    }

    // ---- properties -------------------------------------------------------

    fn arb_json(keys: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..300).prop_map(Value::from),
            (-1.0e3f64..1.0e3).prop_map(Value::from),
            prop_oneof![
                Just("replace".to_owned()),
                Just("delete".to_owned()),
                Just("merge".to_owned()),
                "[a-z~/$0-9-]{0,4}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 48, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((keys.clone(), inner), 0..5)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// Objects of objects and scalars only.
    fn arb_plain_object() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..300).prop_map(Value::from),
            "[a-z]{0,3}".prop_map(Value::String),
        ];
        let object = |inner: BoxedStrategy<Value>| {
            prop::collection::vec((target_keys(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect()))
        };
        let nested = leaf.prop_recursive(4, 32, 5, move |inner| object(inner.boxed()));
        object(nested.boxed())
    }

    /// Keys a target may hold: the schema's field names and random ones.
    fn target_keys() -> BoxedStrategy<String> {
        prop_oneof![
            prop::sample::select(vec![
                "metadata",
                "spec",
                "status",
                "template",
                "containers",
                "initContainers",
                "name",
                "env",
                "ports",
                "containerPort",
                "finalizers",
                "volumes",
                "conditions",
                "type",
                "strategy",
                "jobTemplate",
                "uid",
                "ownerReferences",
                "podCIDRs",
            ])
            .prop_map(str::to_owned),
            "[a-c]{1,2}",
        ]
        .boxed()
    }

    /// Keys a patch may hold: the target's plus every directive.
    fn patch_keys() -> BoxedStrategy<String> {
        prop_oneof![
            3 => target_keys(),
            1 => prop::sample::select(vec![
                "$patch", "$retainKeys", "$setElementOrder/containers", "$setElementOrder/finalizers",
                "$setElementOrder/env", "$deleteFromPrimitiveList/finalizers",
                "$deleteFromPrimitiveList/podCIDRs", "$setElementOrder/", "$unknown",
            ])
            .prop_map(str::to_owned),
        ]
        .boxed()
    }

    fn arb_pointer() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a",
                "b",
                "spec",
                "containers",
                "0",
                "1",
                "2",
                "-",
                "01",
                "~0",
                "~1",
                "~2",
                "",
                "99999999999999999999999",
            ]),
            0..4,
        )
        .prop_map(|tokens| tokens.iter().map(|t| format!("/{t}")).collect())
    }

    fn arb_operation() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(vec![
                "add", "remove", "replace", "move", "copy", "test", "bogus",
            ]),
            arb_pointer(),
            arb_pointer(),
            arb_json(target_keys()),
            any::<bool>(),
        )
            .prop_map(|(op, path, from, value, drop_member)| {
                let mut o = json!({"op": op, "path": path, "from": from, "value": value});
                if drop_member {
                    o.as_object_mut().map(|m| m.shift_remove("value"));
                }
                o
            })
    }

    proptest! {
        #[test]
        fn merge_patch_is_idempotent(target in arb_json(target_keys()), patch in arb_json(patch_keys())) {
            let once = merge_patch(&target, &patch);
            let twice = merge_patch(&once, &patch);
            prop_assert_eq!(twice, once);
        }

        #[test]
        fn json_patch_never_panics(
            target in arb_json(target_keys()),
            ops in prop::collection::vec(arb_operation(), 0..6),
            raw in arb_json(patch_keys()),
        ) {
            let _ = json_patch(&target, &Value::Array(ops));
            let _ = json_patch(&target, &raw);
        }

        #[test]
        fn strategic_merge_patch_never_panics_nor_leaks_directives(
            kind in prop::sample::select(vec!["Pod", "Deployment", "Node", "CronJob", "ConfigMap"]),
            target in arb_json(target_keys()),
            patch in arb_json(patch_keys()),
        ) {
            if let Ok(result) = strategic_merge_patch(kind, &target, &patch) {
                prop_assert!(!has_directive(&result), "{} + {} = {}", target, patch, result);
            }
        }

        #[test]
        fn strategic_merge_patch_of_plain_maps_is_a_merge_patch(
            target in arb_plain_object(),
            patch in arb_plain_object(),
        ) {
            // Without lists or directives both formats agree (Kubernetes'
            // definition of strategic merge patch).
            let strategic = strategic_merge_patch("Deployment", &target, &patch).unwrap();
            prop_assert_eq!(strategic, merge_patch(&target, &patch));
        }
    }
}
