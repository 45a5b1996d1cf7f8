//! A linearizability checker for histories of single-key operations on the
//! store: create, compare-and-swap update, delete (optionally conditional)
//! and linearizable reads, each of which returns the resourceVersion (the
//! log index) it wrote or saw.
//!
//! The search is Wing & Gong's, with Lowe's memoization of (set of
//! linearized operations, model state) pairs — the algorithm Porcupine
//! uses. Operations on different keys commute, so the history is split by
//! key and each key is checked on its own (linearizability is local).
//!
//! An operation whose outcome is unknown (it timed out, or its master
//! crashed) may take effect at any point after its call, or never. It is
//! modelled with a return at infinity: "never" is the same as "at the very
//! end, after everything that could observe it". So the search only places
//! such an operation where it takes effect, and stops as soon as every
//! answered operation is placed: the rest go at the end. This keeps many
//! unanswered operations from multiplying the search.
//!
//! Values written are unique, which lets the checker tie every value to the
//! one write that produced it and report impossible observations (a value
//! nobody wrote, one write seen at two resourceVersions, two writes sharing
//! a resourceVersion) before searching.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Identifies a value written by one write operation (unique per history).
pub type ValueId = u64;

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// Create the key with `value`; fails if it exists.
    Create { value: ValueId },
    /// Replace the key with `value` if its resourceVersion is `expect`.
    Update { expect: u64, value: ValueId },
    /// Delete the key, if its resourceVersion is `expect` when given.
    Delete { expect: Option<u64> },
    /// A linearizable read (ReadIndex barrier, then a local read).
    Read,
}

/// What the client got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A create or update applied at `rv`.
    Written {
        rv: u64,
    },
    /// A delete applied at `rv`, removing the object holding `value`.
    Deleted {
        rv: u64,
        value: ValueId,
    },
    AlreadyExists,
    NotFound,
    /// The key's resourceVersion was `current`, not the expected one.
    Conflict {
        current: u64,
    },
    /// A read: the object's resourceVersion and value, or None if absent.
    Read(Option<(u64, ValueId)>),
    /// No answer (timeout, crash): it may or may not have taken effect.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub client: usize,
    pub key: String,
    pub call: Call,
    pub ret: Ret,
    /// Logical time of the call; distinct from every other call and return.
    pub invoked: u64,
    /// Logical time of the return; ignored (infinite) when `ret` is Unknown.
    pub returned: u64,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ret = if self.ret == Ret::Unknown {
            "inf".to_string()
        } else {
            self.returned.to_string()
        };
        write!(
            f,
            "[{:>6} .. {:>6}] client {} {} {:?} -> {:?}",
            self.invoked, ret, self.client, self.key, self.call, self.ret
        )
    }
}

/// The result of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// Not linearizable: why, and the operations of the key concerned.
    Violation(Violation),
    /// The search for `key` gave up after the step budget.
    GaveUp {
        key: String,
        steps: u64,
    },
}

/// A proof-carrying failure: the reason and the key's operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    pub reason: String,
    /// The key's history, in call order.
    pub history: Vec<Operation>,
    /// The longest prefix of operations the search could linearize.
    pub longest_prefix: Vec<Operation>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key {}: {}", self.key, self.reason)?;
        writeln!(f, "history of {}:", self.key)?;
        for op in &self.history {
            writeln!(f, "  {op}")?;
        }
        if !self.longest_prefix.is_empty() {
            writeln!(f, "longest linearizable prefix:")?;
            for op in &self.longest_prefix {
                writeln!(f, "  {op}")?;
            }
        }
        Ok(())
    }
}

/// Checks `history`, spending at most `budget` search steps per key.
pub fn check(history: &[Operation], budget: u64) -> Verdict {
    check_counting(history, budget).0
}

/// Like [`check`], also returning the most search steps one key took.
pub fn check_counting(history: &[Operation], budget: u64) -> (Verdict, u64) {
    // Reads that got no answer observed nothing.
    let ops: Vec<&Operation> = history
        .iter()
        .filter(|o| !(o.call == Call::Read && o.ret == Ret::Unknown))
        .collect();
    let facts = match Facts::gather(&ops) {
        Ok(f) => f,
        Err(v) => return (Verdict::Violation(v), 0),
    };
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in &ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut most = 0;
    for (key, mut ops) in by_key {
        ops.sort_by_key(|o| o.invoked);
        let (verdict, steps) = search(key, &ops, &facts, budget);
        most = most.max(steps);
        if verdict != Verdict::Linearizable {
            return (verdict, most);
        }
    }
    (Verdict::Linearizable, most)
}

/// What the whole history says about values and resourceVersions.
struct Facts {
    /// The resourceVersion each value was written at, where known.
    rv_of_value: BTreeMap<ValueId, u64>,
    /// The value each known resourceVersion holds.
    value_of_rv: BTreeMap<u64, ValueId>,
    /// Values some answer shows (a read, a delete's removed object, or a
    /// known resourceVersion). The others are indistinguishable from each
    /// other: the model keeps them as [`UNSEEN`].
    seen: HashSet<ValueId>,
}

/// The model's stand-in for a value no answer ever shows.
const UNSEEN: ValueId = ValueId::MAX;

fn violation(ops: &[&Operation], key: &str, reason: String) -> Violation {
    let mut history: Vec<Operation> = ops
        .iter()
        .filter(|o| o.key == key)
        .map(|o| (*o).clone())
        .collect();
    history.sort_by_key(|o| o.invoked);
    Violation {
        key: key.to_string(),
        reason,
        history,
        longest_prefix: Vec::new(),
    }
}

impl Facts {
    fn gather(ops: &[&Operation]) -> Result<Facts, Violation> {
        // Which write produced each value.
        let mut writer: BTreeMap<ValueId, &Operation> = BTreeMap::new();
        for op in ops {
            if let Call::Create { value } | Call::Update { value, .. } = op.call
                && let Some(prev) = writer.insert(value, op)
            {
                return Err(violation(
                    ops,
                    &op.key,
                    format!("value {value} written twice (by {prev} and {op})"),
                ));
            }
        }
        // Every resourceVersion is one log entry: one write or delete.
        let mut rv_owner: BTreeMap<u64, &Operation> = BTreeMap::new();
        for op in ops {
            if let Ret::Written { rv } | Ret::Deleted { rv, .. } = op.ret
                && let Some(prev) = rv_owner.insert(rv, op)
            {
                return Err(violation(
                    ops,
                    &op.key,
                    format!("resourceVersion {rv} returned to two operations: {prev} and {op}"),
                ));
            }
        }
        let mut facts = Facts {
            rv_of_value: BTreeMap::new(),
            value_of_rv: BTreeMap::new(),
            seen: HashSet::new(),
        };
        let learn = |facts: &mut Facts, value: ValueId, rv: u64, op: &Operation| {
            let Some(w) = writer.get(&value) else {
                return Err(violation(
                    ops,
                    &op.key,
                    format!("{op} observed value {value}, which no operation wrote"),
                ));
            };
            if w.key != op.key {
                return Err(violation(
                    ops,
                    &op.key,
                    format!("{op} observed value {value}, written to another key by {w}"),
                ));
            }
            if matches!(
                w.ret,
                Ret::AlreadyExists | Ret::NotFound | Ret::Conflict { .. }
            ) {
                return Err(violation(
                    ops,
                    &op.key,
                    format!("{op} observed value {value} of a write that failed: {w}"),
                ));
            }
            if let Some(prev) = facts.rv_of_value.insert(value, rv)
                && prev != rv
            {
                return Err(violation(
                    ops,
                    &op.key,
                    format!(
                        "value {value} seen at resourceVersions {prev} and {rv} (last by {op})"
                    ),
                ));
            }
            if let Some(prev) = facts.value_of_rv.insert(rv, value)
                && prev != value
            {
                return Err(violation(
                    ops,
                    &op.key,
                    format!(
                        "resourceVersion {rv} seen holding values {prev} and {value} (last by {op})"
                    ),
                ));
            }
            if let Some(owner) = rv_owner.get(&rv)
                && matches!(owner.ret, Ret::Deleted { .. })
            {
                return Err(violation(
                    ops,
                    &op.key,
                    format!("{op} observed resourceVersion {rv}, which is a delete ({owner})"),
                ));
            }
            Ok(())
        };
        for op in ops {
            match (&op.call, &op.ret) {
                (Call::Create { value } | Call::Update { value, .. }, Ret::Written { rv }) => {
                    learn(&mut facts, *value, *rv, op)?
                }
                (_, Ret::Read(Some((rv, value)))) => learn(&mut facts, *value, *rv, op)?,
                _ => {}
            }
        }
        // A deleted value must have been written to that key (its rv may
        // stay unknown if its write had no answer).
        for op in ops {
            if let Ret::Deleted { value, .. } = op.ret {
                match writer.get(&value) {
                    Some(w)
                        if w.key == op.key
                            && !matches!(
                                w.ret,
                                Ret::AlreadyExists | Ret::NotFound | Ret::Conflict { .. }
                            ) => {}
                    _ => {
                        return Err(violation(
                            ops,
                            &op.key,
                            format!(
                                "{op} deleted value {value}, which no successful write on this key produced"
                            ),
                        ));
                    }
                }
            }
        }
        facts.seen = facts.rv_of_value.keys().copied().collect();
        for op in ops {
            if let Ret::Deleted { value, .. } = op.ret {
                facts.seen.insert(value);
            }
        }
        Ok(facts)
    }

    /// The value as the model stores it.
    fn canonical(&self, value: ValueId) -> ValueId {
        if self.seen.contains(&value) {
            value
        } else {
            UNSEEN
        }
    }

    /// What an unanswered operation does, for telling interchangeable ones
    /// apart: two with the same signature have the same effect everywhere.
    fn signature(&self, call: &Call) -> (u8, u64, u64) {
        match call {
            Call::Create { value } => (0, 0, self.canonical(*value)),
            Call::Update { expect, value } => (1, *expect, self.canonical(*value)),
            Call::Delete { expect: None } => (2, 0, 0),
            Call::Delete { expect: Some(e) } => (3, *e, 0),
            Call::Read => (4, 0, 0),
        }
    }

    /// Whether an object whose resourceVersion is `rv` (None: written by an
    /// unanswered write never observed) may have resourceVersion `r`.
    fn rv_may_be(&self, rv: Option<u64>, r: u64) -> bool {
        match rv {
            Some(x) => x == r,
            // `r` may be the unknown one unless it is known to be another value's.
            None => !self.value_of_rv.contains_key(&r),
        }
    }
}

/// The model: the key's object (value and resourceVersion, None when not
/// known) and the highest resourceVersion written to the key so far, which
/// every later write must exceed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    obj: Option<(ValueId, Option<u64>)>,
    floor: u64,
}

impl Facts {
    /// The state after `op` from `s`, or None if `op` cannot happen there.
    ///
    /// An unanswered operation is only ever linearized where it takes
    /// effect: where its precondition fails it changes nothing, and a no-op
    /// can always move to the end of the order, which the search treats as
    /// done once every answered operation is placed.
    fn step(&self, s: &State, op: &Operation) -> Option<State> {
        let written = |value: ValueId, rv: Option<u64>| -> Option<State> {
            let value = self.canonical(value);
            match rv {
                Some(rv) if rv <= s.floor => None,
                Some(rv) => Some(State {
                    obj: Some((value, Some(rv))),
                    floor: rv,
                }),
                None => Some(State {
                    obj: Some((value, None)),
                    floor: s.floor,
                }),
            }
        };
        let same = || Some(s.clone());
        match (&op.call, &op.ret) {
            (Call::Read, Ret::Read(seen)) => match (seen, &s.obj) {
                (None, None) => same(),
                (Some((rv, v)), Some((sv, srv))) if v == sv && srv.is_none_or(|x| x == *rv) => {
                    same()
                }
                _ => None,
            },
            (Call::Create { value }, Ret::Written { rv }) if s.obj.is_none() => {
                written(*value, Some(*rv))
            }
            (Call::Create { .. }, Ret::AlreadyExists) if s.obj.is_some() => same(),
            (Call::Create { value }, Ret::Unknown) if s.obj.is_none() => {
                written(*value, self.rv_of_value.get(value).copied())
            }
            (Call::Update { expect, value }, Ret::Written { rv }) => match s.obj {
                Some((_, srv)) if self.rv_may_be(srv, *expect) => written(*value, Some(*rv)),
                _ => None,
            },
            (Call::Update { expect, value }, Ret::Unknown) => match s.obj {
                Some((_, srv)) if self.rv_may_be(srv, *expect) => {
                    written(*value, self.rv_of_value.get(value).copied())
                }
                _ => None,
            },
            (
                Call::Update { expect, .. }
                | Call::Delete {
                    expect: Some(expect),
                },
                Ret::Conflict { current },
            ) => match s.obj {
                Some((_, srv)) if self.rv_may_be(srv, *current) && srv != Some(*expect) => same(),
                _ => None,
            },
            (Call::Update { .. } | Call::Delete { .. }, Ret::NotFound) if s.obj.is_none() => same(),
            (Call::Delete { expect }, Ret::Deleted { rv, value }) => match s.obj {
                Some((v, srv))
                    if v == *value
                        && *rv > s.floor
                        && expect.is_none_or(|e| self.rv_may_be(srv, e)) =>
                {
                    Some(State {
                        obj: None,
                        floor: *rv,
                    })
                }
                _ => None,
            },
            (Call::Delete { expect }, Ret::Unknown) => match s.obj {
                Some((_, srv)) if expect.is_none_or(|e| self.rv_may_be(srv, e)) => Some(State {
                    obj: None,
                    floor: s.floor,
                }),
                _ => None,
            },
            _ => None,
        }
    }
}

/// One call or return in the doubly linked list the search edits.
#[derive(Clone, Copy, Debug)]
struct Event {
    op: usize,
    call: bool,
    /// Index of the matching return (for a call).
    ret: usize,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

struct List {
    ev: Vec<Event>,
}

impl List {
    /// Events sorted by time with a sentinel head at index 0.
    fn new(ops: &[&Operation]) -> List {
        let mut times: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            times.push((op.invoked, true, i));
            let r = if op.ret == Ret::Unknown {
                u64::MAX
            } else {
                op.returned
            };
            times.push((r, false, i));
        }
        // At equal times (only the infinite returns) order by operation.
        times.sort_by_key(|&(t, call, i)| (t, !call, i));
        let mut ev = vec![Event {
            op: NIL,
            call: false,
            ret: NIL,
            prev: NIL,
            next: NIL,
        }];
        let mut ret_at = vec![NIL; ops.len()];
        for (t, call, i) in &times {
            let _ = t;
            let idx = ev.len();
            if !call {
                ret_at[*i] = idx;
            }
            ev.push(Event {
                op: *i,
                call: *call,
                ret: NIL,
                prev: idx - 1,
                next: NIL,
            });
            ev[idx - 1].next = idx;
        }
        for e in ev.iter_mut().skip(1) {
            if e.call {
                e.ret = ret_at[e.op];
            }
        }
        List { ev }
    }

    fn unlink(&mut self, i: usize) {
        let Event { prev, next, .. } = self.ev[i];
        self.ev[prev].next = next;
        if next != NIL {
            self.ev[next].prev = prev;
        }
    }

    fn relink(&mut self, i: usize) {
        let Event { prev, next, .. } = self.ev[i];
        self.ev[prev].next = i;
        if next != NIL {
            self.ev[next].prev = i;
        }
    }

    /// Removes a call and its return.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.ev[call].ret);
    }

    /// Undoes [`List::lift`] (in reverse order).
    fn unlift(&mut self, call: usize) {
        self.relink(self.ev[call].ret);
        self.relink(call);
    }
}

/// The configurations (operations placed, model state) already explored.
///
/// Lowe's memoization keeps exact pairs. With unanswered operations a
/// configuration is also covered by one with the same answered operations
/// and state but a *subset* of the unanswered ones placed: the extra ones
/// could just as well go at the end. Without this, every subset of
/// unanswered operations that passes through the same state is explored.
struct Seen {
    /// Bits of the unanswered operations.
    unknown: Vec<u64>,
    /// (answered placed, state) -> the unanswered sets placed with them,
    /// none a superset of another.
    by_answered: HashMap<(Vec<u64>, State), Vec<Vec<u64>>>,
}

impl Seen {
    fn new(ops: &[&Operation]) -> Seen {
        let mut unknown = vec![0u64; ops.len().div_ceil(64)];
        for (i, op) in ops.iter().enumerate() {
            if op.ret == Ret::Unknown {
                unknown[i / 64] |= 1 << (i % 64);
            }
        }
        Seen {
            unknown,
            by_answered: HashMap::new(),
        }
    }

    /// Records the configuration; false if an explored one covers it.
    fn insert(&mut self, placed: &[u64], state: &State) -> bool {
        let answered: Vec<u64> = placed
            .iter()
            .zip(&self.unknown)
            .map(|(p, u)| p & !u)
            .collect();
        let unanswered: Vec<u64> = placed
            .iter()
            .zip(&self.unknown)
            .map(|(p, u)| p & u)
            .collect();
        let subset = |a: &[u64], b: &[u64]| a.iter().zip(b).all(|(x, y)| x & !y == 0);
        let sets = self
            .by_answered
            .entry((answered, state.clone()))
            .or_default();
        if sets.iter().any(|s| subset(s, &unanswered)) {
            return false;
        }
        sets.retain(|s| !subset(&unanswered, s));
        sets.push(unanswered);
        true
    }
}

/// One configuration on the search path: its state, the calls that may go
/// next (those before the first pending return), and which was taken.
struct Frame {
    state: State,
    candidates: Vec<usize>,
    next: usize,
    taken: Option<usize>,
}

/// The calls that may be placed next: every call before the first return
/// still in the list. Answered operations come first: an unanswered one is
/// only worth placing early when something answered needs its effect.
///
/// Of unanswered operations with the same effect only the earliest called
/// is offered: a linearization using a later one can use it instead (and
/// the later one wherever the earliest went).
fn candidates(list: &List, ops: &[&Operation], facts: &Facts) -> Vec<usize> {
    let mut answered = Vec::new();
    let mut unknown = Vec::new();
    let mut signatures = HashSet::new();
    let mut i = list.ev[0].next;
    while i != NIL && list.ev[i].call {
        let op = ops[list.ev[i].op];
        if op.ret != Ret::Unknown {
            answered.push(i);
        } else if signatures.insert(facts.signature(&op.call)) {
            unknown.push(i);
        }
        i = list.ev[i].next;
    }
    answered.extend(unknown);
    answered
}

fn search(key: &str, ops: &[&Operation], facts: &Facts, budget: u64) -> (Verdict, u64) {
    let mut list = List::new(ops);
    let mut placed = vec![0u64; ops.len().div_ceil(64)];
    let mut seen = Seen::new(ops);
    let answered = |i: usize| ops[i].ret != Ret::Unknown;
    let mut left = (0..ops.len()).filter(|&i| answered(i)).count();
    let mut longest: Vec<usize> = Vec::new();
    let mut stack = vec![Frame {
        state: State {
            obj: None,
            floor: 0,
        },
        candidates: candidates(&list, ops, facts),
        next: 0,
        taken: None,
    }];
    let mut steps = 0u64;
    while left > 0 {
        steps += 1;
        if steps > budget {
            let gave_up = Verdict::GaveUp {
                key: key.to_string(),
                steps,
            };
            return (gave_up, steps);
        }
        let Some(top) = stack.last_mut() else {
            break;
        };
        let Some(&call) = top.candidates.get(top.next) else {
            // Nothing more to try here: undo the choice that led here.
            stack.pop();
            let Some(parent) = stack.last_mut() else {
                break;
            };
            if let Some(call) = parent.taken.take() {
                let op = list.ev[call].op;
                placed[op / 64] &= !(1 << (op % 64));
                list.unlift(call);
                if answered(op) {
                    left += 1;
                }
            }
            continue;
        };
        top.next += 1;
        let op = list.ev[call].op;
        let Some(next) = facts.step(&top.state, ops[op]) else {
            continue;
        };
        let mut lin = placed.clone();
        lin[op / 64] |= 1 << (op % 64);
        if !seen.insert(&lin, &next) {
            continue;
        }
        top.taken = Some(call);
        placed = lin;
        list.lift(call);
        if answered(op) {
            left -= 1;
        }
        stack.push(Frame {
            state: next,
            candidates: candidates(&list, ops, facts),
            next: 0,
            taken: None,
        });
        if stack.len() > longest.len() + 1 {
            longest = stack
                .iter()
                .filter_map(|f| f.taken.map(|c| list.ev[c].op))
                .collect();
        }
    }
    if left == 0 {
        (Verdict::Linearizable, steps)
    } else {
        (
            Verdict::Violation(no_linearization(key, ops, &longest)),
            steps,
        )
    }
}

/// Explains a failed search: the longest prefix found and the first
/// answered operation (by return) that could not follow it.
fn no_linearization(key: &str, ops: &[&Operation], longest: &[usize]) -> Violation {
    let placed: HashSet<usize> = longest.iter().copied().collect();
    let stuck = (0..ops.len())
        .filter(|i| !placed.contains(i) && ops[*i].ret != Ret::Unknown)
        .min_by_key(|&i| ops[i].returned);
    let reason = match stuck {
        Some(i) => format!(
            "not linearizable: at most {} of {} operations can be ordered; after them, {} cannot take effect",
            longest.len(),
            ops.len(),
            ops[i]
        ),
        None => "not linearizable".to_string(),
    };
    let mut v = violation(ops, key, reason);
    v.longest_prefix = longest.iter().map(|&i| ops[i].clone()).collect();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shorthand: (client, call, ret, invoked, returned).
    fn op(client: usize, call: Call, ret: Ret, invoked: u64, returned: u64) -> Operation {
        Operation {
            client,
            key: "k".into(),
            call,
            ret,
            invoked,
            returned,
        }
    }

    fn create(v: ValueId) -> Call {
        Call::Create { value: v }
    }
    fn update(expect: u64, v: ValueId) -> Call {
        Call::Update { expect, value: v }
    }
    fn read(rv: u64, v: ValueId) -> Ret {
        Ret::Read(Some((rv, v)))
    }
    fn w(rv: u64) -> Ret {
        Ret::Written { rv }
    }

    fn is_ok(h: &[Operation]) -> bool {
        match check(h, 1_000_000) {
            Verdict::Linearizable => true,
            Verdict::Violation(_) => false,
            Verdict::GaveUp { .. } => panic!("budget exhausted on a tiny history"),
        }
    }

    #[test]
    fn linearizable_histories() {
        let cases: Vec<(&str, Vec<Operation>)> = vec![
            ("empty", vec![]),
            (
                "read of nothing",
                vec![op(0, Call::Read, Ret::Read(None), 1, 2)],
            ),
            (
                "sequential create, update, read, delete, read",
                vec![
                    op(0, create(1), w(3), 1, 2),
                    op(0, update(3, 2), w(5), 3, 4),
                    op(1, Call::Read, read(5, 2), 5, 6),
                    op(
                        1,
                        Call::Delete { expect: Some(5) },
                        Ret::Deleted { rv: 7, value: 2 },
                        7,
                        8,
                    ),
                    op(0, Call::Read, Ret::Read(None), 9, 10),
                ],
            ),
            (
                "concurrent read may see the old or the new value",
                vec![
                    op(0, create(1), w(3), 1, 2),
                    op(0, update(3, 2), w(5), 3, 8),
                    op(1, Call::Read, read(3, 1), 4, 5),
                    op(2, Call::Read, read(5, 2), 6, 7),
                ],
            ),
            (
                "reads ordered against the write's real order, not call order",
                vec![
                    op(0, create(1), w(3), 1, 10),
                    op(1, Call::Read, Ret::Read(None), 2, 3),
                    op(2, Call::Read, read(3, 1), 4, 5),
                ],
            ),
            (
                "unknown write that never happened",
                vec![
                    op(0, create(1), Ret::Unknown, 1, 0),
                    op(1, Call::Read, Ret::Read(None), 5, 6),
                    op(1, create(2), w(9), 7, 8),
                    op(1, Call::Read, read(9, 2), 10, 11),
                ],
            ),
            (
                "unknown write that happened long after its call",
                vec![
                    op(0, create(1), Ret::Unknown, 1, 0),
                    op(1, Call::Read, Ret::Read(None), 5, 6),
                    op(1, Call::Read, read(4, 1), 7, 8),
                ],
            ),
            (
                "conflict reports the current version",
                vec![
                    op(0, create(1), w(3), 1, 2),
                    op(1, update(3, 2), w(4), 3, 4),
                    op(0, update(3, 5), Ret::Conflict { current: 4 }, 5, 6),
                    op(0, create(6), Ret::AlreadyExists, 7, 8),
                ],
            ),
            (
                "conflict against an unanswered write's unknown version",
                vec![
                    op(0, create(1), w(3), 1, 2),
                    op(1, update(3, 2), Ret::Unknown, 3, 0),
                    op(0, update(3, 5), Ret::Conflict { current: 4 }, 5, 6),
                ],
            ),
            (
                "unconditional delete of an unanswered create",
                vec![
                    op(0, create(1), Ret::Unknown, 1, 0),
                    op(
                        1,
                        Call::Delete { expect: None },
                        Ret::Deleted { rv: 6, value: 1 },
                        3,
                        4,
                    ),
                    op(1, Call::Delete { expect: None }, Ret::NotFound, 5, 7),
                ],
            ),
        ];
        for (name, h) in cases {
            assert!(is_ok(&h), "{name}: should be linearizable");
        }
    }

    #[test]
    fn non_linearizable_histories() {
        let cases: Vec<(&str, Vec<Operation>)> = vec![
            (
                "stale read after a completed write",
                vec![
                    op(0, create(1), w(3), 1, 2),
                    op(0, update(3, 2), w(5), 3, 4),
                    op(1, Call::Read, read(3, 1), 5, 6),
                ],
            ),
            (
                "lost write: acknowledged create, later read finds nothing",
                vec![
                    op(0, create(1), w(3), 1, 2),
                    op(1, Call::Read, Ret::Read(None), 3, 4),
                ],
            ),
            (
                "write visible before its call",
                vec![
                    op(1, Call::Read, read(3, 1), 1, 2),
                    op(0, create(1), w(3), 3, 4),
                ],
            ),
            (
                "unknown write visible before its call",
                vec![
                    op(1, Call::Read, read(3, 1), 1, 2),
                    op(0, create(1), Ret::Unknown, 3, 0),
                ],
            ),
            (
                "reads go back in time",
                vec![
                    op(0, create(1), w(3), 1, 10),
                    op(1, Call::Read, read(3, 1), 2, 3),
                    op(2, Call::Read, Ret::Read(None), 4, 5),
                ],
            ),
            (
                "two creates of one key both succeed",
                vec![op(0, create(1), w(3), 1, 4), op(1, create(2), w(4), 2, 5)],
            ),
            (
                "compare-and-swap succeeds against the wrong version",
                vec![
                    op(0, create(1), w(3), 1, 2),
                    op(0, update(3, 2), w(4), 3, 4),
                    op(1, update(3, 5), w(6), 5, 6),
                ],
            ),
            (
                "versions go backwards",
                vec![
                    op(0, create(1), w(7), 1, 2),
                    op(0, update(7, 2), w(5), 3, 4),
                ],
            ),
            (
                "a value nobody wrote",
                vec![op(1, Call::Read, read(3, 42), 1, 2)],
            ),
            (
                "one write seen at two versions (applied twice)",
                vec![
                    op(0, create(1), Ret::Unknown, 1, 0),
                    op(1, Call::Read, read(3, 1), 2, 3),
                    op(1, Call::Read, read(5, 1), 4, 5),
                ],
            ),
            (
                "value of a failed write is visible",
                vec![
                    op(0, create(1), w(3), 1, 2),
                    op(1, create(2), Ret::AlreadyExists, 3, 4),
                    op(1, Call::Read, read(5, 2), 5, 6),
                ],
            ),
            (
                "conflict while the version matched",
                vec![
                    op(0, create(1), w(3), 1, 2),
                    op(1, update(3, 2), Ret::Conflict { current: 3 }, 3, 4),
                ],
            ),
            (
                "delete reports a value that was not there",
                vec![
                    op(0, create(1), w(3), 1, 2),
                    op(0, update(3, 2), w(4), 3, 4),
                    op(
                        1,
                        Call::Delete { expect: None },
                        Ret::Deleted { rv: 6, value: 1 },
                        5,
                        6,
                    ),
                ],
            ),
            (
                "not found although the key exists",
                vec![
                    op(0, create(1), w(3), 1, 2),
                    op(1, Call::Delete { expect: None }, Ret::NotFound, 3, 4),
                ],
            ),
        ];
        for (name, h) in cases {
            assert!(!is_ok(&h), "{name}: should NOT be linearizable");
        }
    }

    #[test]
    fn keys_are_checked_independently_and_reported() {
        let mut a = op(0, create(1), w(3), 1, 2);
        a.key = "a".into();
        let mut b = op(1, Call::Read, Ret::Read(None), 3, 4);
        b.key = "b".into();
        let mut stale = op(1, Call::Read, Ret::Read(None), 5, 6);
        stale.key = "a".into();
        assert_eq!(check(&[a.clone(), b.clone()], 1000), Verdict::Linearizable);
        match check(&[a, b, stale], 1000) {
            Verdict::Violation(v) => {
                assert_eq!(v.key, "a");
                assert_eq!(v.history.len(), 2);
                assert!(v.to_string().contains("key a"));
            }
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn many_concurrent_unknown_writes_stay_tractable() {
        // 40 unanswered updates all expecting the same version: at most one
        // can apply; memoization keeps the search small.
        let mut h = vec![op(0, create(1), w(3), 1, 2)];
        for i in 0..40u64 {
            h.push(op(
                i as usize + 1,
                update(3, 100 + i),
                Ret::Unknown,
                10 + i,
                0,
            ));
        }
        h.push(op(0, Call::Read, read(3, 1), 100, 101));
        h.push(op(0, Call::Read, read(60, 117), 102, 103));
        assert_eq!(check(&h, 200_000), Verdict::Linearizable);
        // ...but not two of them.
        h.push(op(0, Call::Read, read(61, 118), 104, 105));
        assert!(matches!(check(&h, 200_000), Verdict::Violation(_)));
    }

    #[test]
    fn interchangeable_unanswered_operations_are_tried_in_call_order() {
        let del = Call::Delete { expect: None };
        let base = vec![
            op(0, del.clone(), Ret::Unknown, 1, 0),
            op(1, create(1), w(3), 2, 3),
            op(1, Call::Read, Ret::Read(None), 4, 5),
            op(1, create(2), w(7), 11, 12),
            op(1, Call::Read, Ret::Read(None), 13, 14),
        ];
        // One unanswered delete cannot explain both absences...
        assert!(!is_ok(&base));
        // ...two can, the second only after its call.
        let mut two = base.clone();
        two.push(op(2, del.clone(), Ret::Unknown, 10, 0));
        assert!(is_ok(&two));
        let mut late = base;
        late.push(op(2, del, Ret::Unknown, 15, 0));
        assert!(!is_ok(&late));
    }

    #[test]
    fn many_unanswered_creates_and_deletes_stay_tractable() {
        // Crashes leave piles of unanswered writes on one key.
        let mut h = Vec::new();
        let mut t = 0;
        let mut next = || {
            t += 1;
            t
        };
        for i in 0..30u64 {
            let c = next();
            h.push(op(i as usize, create(100 + i), Ret::Unknown, c, 0));
            let d = next();
            h.push(op(
                i as usize,
                Call::Delete { expect: None },
                Ret::Unknown,
                d,
                0,
            ));
        }
        let (a, b) = (next(), next());
        h.push(op(0, Call::Read, Ret::Read(None), a, b));
        let (a, b) = (next(), next());
        h.push(op(0, Call::Read, read(40, 117), a, b));
        let (a, b) = (next(), next());
        h.push(op(0, Call::Read, Ret::Read(None), a, b));
        let (verdict, steps) = check_counting(&h, 100_000);
        assert_eq!(verdict, Verdict::Linearizable);
        assert!(steps < 10_000, "took {steps} steps");
        // The same value at the same version again after it was gone.
        let (a, b) = (next(), next());
        h.push(op(0, Call::Read, read(40, 117), a, b));
        assert!(matches!(check(&h, 100_000), Verdict::Violation(_)));
    }

    #[test]
    fn budget_exhaustion_is_reported() {
        let mut h = vec![op(0, create(1), w(3), 1, 2)];
        for i in 0..20u64 {
            h.push(op(i as usize + 1, Call::Read, read(3, 1), 10 + i, 1000));
        }
        assert!(matches!(check(&h, 5), Verdict::GaveUp { .. }));
    }
}
