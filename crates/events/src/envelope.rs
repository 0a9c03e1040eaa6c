//! The CloudEvents 1.0 envelope (JSON format) every event travels in.

use emporium_contracts::events::EventData;
use serde::{Deserialize, Serialize};

/// `/emporium/<service>`: the CloudEvents `source` of a service's events.
pub fn source_of(service: &str) -> String {
    format!("/emporium/{service}")
}

/// One event, as stored in an outbox and served on a feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub specversion: String,
    /// UUID v7: unique, and ordered by creation time.
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339.
    pub time: String,
    pub subject: String,
    pub datacontenttype: String,
    pub data: serde_json::Value,
    /// W3C trace context of the transaction that published it (CloudEvents
    /// distributed tracing extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// An event as a handler receives it: the envelope's attributes and typed data.
#[derive(Debug, Clone)]
pub struct Received<E> {
    pub id: String,
    pub subject: String,
    pub time: String,
    pub data: E,
}

impl Envelope {
    /// Decodes `data` as `E`, checking the type.
    pub fn decode<E: EventData>(&self) -> Result<Received<E>, serde_json::Error> {
        let data = serde_json::from_value(self.data.clone())?;
        Ok(Received {
            id: self.id.clone(),
            subject: self.subject.clone(),
            time: self.time.clone(),
            data,
        })
    }
}

/// One page of a producer's feed: `GET /internal/events?after=SEQ`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedPage {
    pub events: Vec<FeedEvent>,
    /// The newest sequence number in the outbox when the page was read.
    pub head: i64,
    /// The highest sequence number pruned past its retention: a reader below it
    /// has missed events.
    #[serde(default)]
    pub pruned: i64,
    /// With `types` asked: every event of those types up to this position is in the
    /// page (a reader may move its cursor here). Absent from producers that do not
    /// filter, and from unfiltered pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<i64>,
}

/// An event with its position in the producer's outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedEvent {
    pub seq: i64,
    #[serde(flatten)]
    pub event: Envelope,
}
