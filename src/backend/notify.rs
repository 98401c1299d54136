//! The NOTIFY that tells other processes a stream was written, as both backends send
//! and hear it: its payload format (`payloads`, `deliver`) and the listener's probes.
//! The Rust pool sends and listens in `pool/notifier.rs`; JS clients through
//! `lib/client-hub.cjs`.
//!
//! A payload (JSON, on `sql::NOTIFY_CHANNEL`, under PostgreSQL's 8,000-byte limit) names
//! every stream written (`s`) and carries each chunk small enough (`c`); streams with a
//! chunk too large to carry are listed in `x`, finishes in `e`. `t`, when there, holds
//! when each chunk of `c` was committed (ms since the epoch; 0: not known), for the
//! delivery lag: the writer's clock when the pool announced it after the commit (from a
//! writer that measures it), the database server's when the append's own statement did.

use std::collections::HashSet;
use std::sync::Arc;

use crate::tail::Source;
use crate::wakeups;

/// A stream: its status table (as `sql::wake_key` spells it) and id.
type Key = (String, String);

/// Keep payloads well under PostgreSQL's 8,000-byte limit.
const MAX_PAYLOAD: usize = crate::sql::NOTIFY_MOST_BYTES;

/// A write to announce: a stream, and the chunk when it was an append.
pub struct Written {
    table: String,
    id: String,
    chunk: Option<(u32, Arc<str>)>,
    /// When the chunk's commit was acknowledged (ms since the epoch; 0: not stamped).
    at: f64,
    /// A finish (its state and final count), announced after its statement (on Citus,
    /// where the statement runs on a worker and its own NOTIFY would be sent there).
    finish: Option<(String, i64)>,
}

impl Written {
    pub fn chunk(table: &str, id: &str, seq: u32, data: Arc<str>, at: f64) -> Self {
        Written {
            table: table.into(),
            id: id.into(),
            chunk: Some((seq, data)),
            at,
            finish: None,
        }
    }

    pub fn finished(table: &str, id: &str, state: &str, total: i64) -> Self {
        Written {
            table: table.into(),
            id: id.into(),
            chunk: None,
            at: 0.0,
            finish: Some((state.into(), total)),
        }
    }
}

/// A notification's payload (JSON, on `sql::NOTIFY_CHANNEL`). Versions of this package
/// before chunks were carried read only `o`, `s`, `p` and `f`; they still work with it.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Payload<'a> {
    /// The process that wrote.
    o: std::borrow::Cow<'a, str>,
    /// Every stream written: `[status table, id]`.
    #[serde(default)]
    s: Vec<Key>,
    /// The chunks carried: `[status table, id, seq, text]`, each stream's in seq order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    c: Vec<(String, String, u32, String)>,
    /// When each chunk of `c` was committed (ms since the epoch; 0: not known), or empty.
    /// Versions before it ignore it, and it is optional to this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    t: Vec<f64>,
    /// Streams in `c` with more chunks written than it carries (too large to carry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    x: Vec<Key>,
    /// Streams that finished: `[status table, id, state, chunk count]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    e: Vec<(String, String, String, i64)>,
    /// A listener's probe of its own connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<u64>,
    /// The streams in `s` finished (stop, complete, fail): stop signals wake too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<u8>,
    /// A stream was written whose id is too long to name in a payload: every reader
    /// looks (older versions ignore it, and their shared check finds the write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<u8>,
}

/// A chunk whose JSON is larger than this goes by name only: its readers fetch it.
const CARRY_AT_MOST: usize = 2_000;

/// Payloads announcing every write, in order, each under the size limit: chunks small
/// enough are carried, the rest named.
pub fn payloads(written: impl IntoIterator<Item = Written>) -> Vec<String> {
    let origin = wakeups::origin();
    let empty = serde_json::to_string(&Payload {
        o: origin.into(),
        ..Payload::default()
    })
    .unwrap_or_default()
    .len()
        + 16; // `,"c":[]` and `,"x":[]`
    let mut out = Vec::new();
    let mut payload = Payload {
        o: origin.into(),
        ..Payload::default()
    };
    let mut named: HashSet<Key> = HashSet::new();
    let mut size = empty;
    let flush = |payload: &mut Payload, named: &mut HashSet<Key>, out: &mut Vec<String>| {
        if !payload.s.is_empty() {
            if payload.t.iter().all(|at| *at == 0.0) {
                payload.t.clear();
            }
            out.push(serde_json::to_string(&*payload).unwrap_or_default());
        }
        payload.s.clear();
        payload.c.clear();
        payload.t.clear();
        payload.x.clear();
        named.clear();
    };
    // The bytes a carried chunk's time takes in `t` (a chunk not stamped: `0.0,`, counted
    // once the payload has any stamped).
    let time_size = |at: f64| serde_json::to_string(&at).map_or(24, |t| t.len() + 1);
    let mut timed = false;
    let mut unnamed = false;
    for written in written {
        if let Some((state, total)) = written.finish {
            // A payload of its own, as the finish statement's own NOTIFY would be.
            flush(&mut payload, &mut named, &mut out);
            size = empty;
            timed = false;
            out.push(finish_payload(written.table, written.id, state, total));
            continue;
        }
        let key: Key = (written.table, written.id);
        let name = serde_json::to_string(&key).unwrap_or_default().len() + 1;
        // Named twice (in `s` and `x`), it would not fit in a payload of its own.
        if empty + 2 * name > MAX_PAYLOAD {
            unnamed = true;
            continue;
        }
        let at = written.at;
        let carried = written.chunk.and_then(|(seq, data)| {
            let entry = (key.0.clone(), key.1.clone(), seq, data.to_string());
            let size = serde_json::to_string(&entry).unwrap_or_default().len() + 1;
            (size <= CARRY_AT_MOST).then_some((entry, size))
        });
        // What a carried chunk's time adds to the payload as it is now.
        let time = |timed: bool, earlier: usize| match (&carried, at > 0.0, timed) {
            (None, ..) | (_, false, false) => 0,
            (_, true, true) => time_size(at),
            // The payload's first stamped chunk: `,"t":[]` and a `0.0,` for each before.
            (_, true, false) => time_size(at) + 7 + time_size(0.0) * earlier,
            (_, false, true) => time_size(0.0),
        };
        let adds = if named.contains(&key) { 0 } else { name }
            + carried.as_ref().map_or(name, |(_, size)| *size)
            + time(timed, payload.c.len());
        if size + adds > MAX_PAYLOAD && !payload.s.is_empty() {
            flush(&mut payload, &mut named, &mut out);
            size = empty;
            timed = false;
        }
        size += time(timed, payload.c.len());
        if named.insert(key.clone()) {
            payload.s.push(key.clone());
            size += name;
        }
        match carried {
            Some((entry, entry_size)) => {
                payload.c.push(entry);
                payload.t.push(at);
                timed |= at > 0.0;
                size += entry_size;
            }
            None => {
                if !payload.x.contains(&key) {
                    payload.x.push(key);
                    size += name;
                }
            }
        }
    }
    flush(&mut payload, &mut named, &mut out);
    if unnamed {
        out.push(wake_all_payload());
    }
    out
}

/// A finish's payload (what the finish statement sends itself elsewhere), or a wake-up
/// of every reader when the id is too long to name.
fn finish_payload(table: String, id: String, state: String, total: i64) -> String {
    let payload = Payload {
        o: wakeups::origin().into(),
        f: Some(1),
        s: vec![(table.clone(), id.clone())],
        e: vec![(table, id, state, total)],
        ..Payload::default()
    };
    let text = serde_json::to_string(&payload).unwrap_or_default();
    if text.len() <= MAX_PAYLOAD {
        text
    } else {
        wake_all_payload()
    }
}

/// A payload that wakes every reader of the processes that hear it.
fn wake_all_payload() -> String {
    serde_json::to_string(&Payload {
        o: wakeups::origin().into(),
        w: Some(1),
        ..Payload::default()
    })
    .unwrap_or_default()
}

/// What a notification was.
#[derive(Debug, PartialEq)]
pub enum Heard {
    /// Another process's writes (their readers are woken), or this process's own.
    Writes,
    /// A listener's probe, with its number.
    Probe(u64),
}

/// Hands the chunks a notification from another process carries to this process's
/// readers (`source`: the pool or client it was heard through), and wakes the readers of
/// every stream it names without carrying what was written.
pub fn deliver(payload: &str, source: Source) -> Heard {
    if own_writes(payload) {
        return Heard::Writes; // not parsed: a reader in the writer's process hears each chunk
    }
    let payload = match serde_json::from_str::<Payload>(payload) {
        // This process's own writes reached its readers at once.
        Ok(payload) if payload.o == wakeups::origin() => {
            return payload.p.map_or(Heard::Writes, Heard::Probe);
        }
        Ok(payload) if payload.w.is_some() => {
            wakeups::wake_all();
            return Heard::Writes;
        }
        Ok(payload) => payload,
        // Not ours, or cut: waking everyone costs a query each, never a chunk.
        Err(_) => {
            wakeups::wake_all();
            return Heard::Writes;
        }
    };
    let mut told: HashSet<(&str, &str)> = HashSet::new();
    // When each chunk was committed, if the payload says and the lag is measured here.
    let times =
        (payload.t.len() == payload.c.len() && crate::clock::lag_measured()).then_some(&payload.t);
    for (i, (table, id, seq, data)) in payload.c.iter().enumerate() {
        let at = times.map_or(0.0, |t| t[i]);
        let committed = crate::tail::Committed { at, heard: true };
        wakeups::appended(
            table,
            id,
            source,
            *seq,
            &Arc::from(data.as_str()),
            committed,
        );
        told.insert((table, id));
    }
    for (table, id, _state, total) in &payload.e {
        wakeups::finished(table, id, source, *total);
        wakeups::finished(&crate::sql::finish_key(table), id, source, *total);
        told.insert((table, id));
    }
    for (table, id) in &payload.x {
        wakeups::wake(table, id);
    }
    for (table, id) in &payload.s {
        if told.contains(&(table.as_str(), id.as_str())) {
            continue;
        }
        wakeups::wake(table, id);
        if payload.f.is_some() {
            wakeups::wake(&crate::sql::finish_key(table), id);
        }
    }
    Heard::Writes
}

/// Whether `payload` announces writes of this process (not a probe), as read from its
/// start alone: `{"o":"<origin>"` as serde writes it, or `{"o" : "<origin>"` as
/// PostgreSQL's `json_build_object` does. `"p":` (a probe's key) cannot occur inside a
/// JSON string, whose quotes are escaped.
fn own_writes(payload: &str) -> bool {
    let rest = payload.trim_start_matches('{').trim_start();
    let Some(rest) = rest.strip_prefix("\"o\"") else {
        return false;
    };
    let Some(rest) = rest.trim_start().strip_prefix(':') else {
        return false;
    };
    let Some(rest) = rest.trim_start().strip_prefix('"') else {
        return false;
    };
    rest.strip_prefix(wakeups::origin())
        .is_some_and(|after| after.starts_with('"'))
        && !payload.contains("\"p\":")
}

/// A probe payload: the listener that sent it knows its own connection delivers once it
/// hears it back.
pub fn probe_payload(probe: u64) -> String {
    serde_json::to_string(&Payload {
        o: wakeups::origin().into(),
        p: Some(probe),
        ..Payload::default()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests;
