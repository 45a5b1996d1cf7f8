//! Watch events and the decoder for the stream of JSON objects a watch
//! response carries (one `{"type": ..., "object": ...}` per line).

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// `metav1.WatchEvent` types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
    /// Only `metadata.resourceVersion` of the object is meaningful.
    Bookmark,
    /// The object is a `Status` (e.g. 410 Gone: the resourceVersion is too
    /// old, list again).
    Error,
}

/// One event of a watch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub type_: WatchEventType,
    pub object: serde_json::Value,
}

impl WatchEvent {
    /// The server's error, for an `ERROR` event.
    pub fn error(&self) -> Option<ApiError> {
        if self.type_ != WatchEventType::Error {
            return None;
        }
        let code = self
            .object
            .get("code")
            .and_then(|c| c.as_u64())
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.object).unwrap_or_default();
        Some(ApiError::from_response(code, &body))
    }
}

/// Splits a byte stream into watch events. JSON values are taken as they
/// complete, whether or not newlines separate them; a partial value waits
/// for more bytes.
#[derive(Debug, Default)]
pub struct EventDecoder {
    buf: Vec<u8>,
}

impl EventDecoder {
    /// Adds received bytes and returns every event they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<WatchEvent>, serde_json::Error> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<WatchEvent>();
        let result = loop {
            match stream.next() {
                Some(Ok(ev)) => events.push(ev),
                Some(Err(e)) if e.is_eof() => break Ok(()),
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            }
        };
        let consumed = stream.byte_offset();
        result?;
        self.buf.drain(..consumed);
        Ok(events)
    }

    /// Whether bytes of an incomplete value are left over (at end of stream
    /// that means the server cut an event short).
    pub fn has_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: &str = concat!(
        r#"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"1"}}}"#,
        "\n",
        r#"{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"2"}}}"#,
        "\n",
        r#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"5"}}}"#,
        r#"{"type":"DELETED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"6"}}}"#,
        "\n",
    );

    fn types(events: &[WatchEvent]) -> Vec<WatchEventType> {
        events.iter().map(|e| e.type_).collect()
    }

    #[test]
    fn decodes_events_across_any_chunking() {
        use WatchEventType::*;
        let bytes = EVENTS.as_bytes();
        for size in [1, 2, 7, 50, bytes.len()] {
            let mut d = EventDecoder::default();
            let mut all = Vec::new();
            for chunk in bytes.chunks(size) {
                all.extend(d.push(chunk).unwrap());
            }
            assert_eq!(
                types(&all),
                vec![Added, Modified, Bookmark, Deleted],
                "chunk {size}"
            );
            assert_eq!(all[2].object["metadata"]["resourceVersion"], "5");
            assert!(!d.has_partial());
        }
    }

    #[test]
    fn partial_and_bad_input() {
        let mut d = EventDecoder::default();
        assert!(d.push(br#"{"type":"ADDED","obj"#).unwrap().is_empty());
        assert!(d.has_partial());
        let mut d = EventDecoder::default();
        assert!(d.push(b"{\"type\":\"EXPLODED\",\"object\":{}}\n").is_err());
        let mut d = EventDecoder::default();
        assert!(d.push(b"not json\n").is_err());
    }

    #[test]
    fn error_events_carry_the_status() {
        let mut d = EventDecoder::default();
        let ev = d
            .push(br#"{"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}"#)
            .unwrap()
            .remove(0);
        let e = ev.error().unwrap();
        assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
        let added = WatchEvent {
            type_: WatchEventType::Added,
            object: serde_json::json!({}),
        };
        assert!(added.error().is_none());
    }
}
