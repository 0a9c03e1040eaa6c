//! A `tracing` layer writing one JSON object per event.
//!
//! tracing-subscriber's own JSON formatter nests span fields under `spans` and has no
//! place for fixed fields such as the service name; this layer flattens the fields of
//! the current span scope into the line, so `request_id` is a top-level key that
//! `emporium logs` and any log shipper can filter on.

use std::io::Write;
use std::sync::Mutex;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::Identity;

/// Writes JSON lines to a writer (stdout in production).
pub struct JsonLayer<W: Write + Send + 'static> {
    identity: Identity,
    out: Mutex<W>,
}

impl JsonLayer<std::io::Stdout> {
    pub fn stdout(identity: Identity) -> Self {
        Self::new(identity, std::io::stdout())
    }
}

impl<W: Write + Send + 'static> JsonLayer<W> {
    pub fn new(identity: Identity, out: W) -> Self {
        Self {
            identity,
            out: Mutex::new(out),
        }
    }
}

/// The fields recorded on a span, kept in its extensions.
struct SpanFields(Map<String, Value>);

struct Visitor<'a>(&'a mut Map<String, Value>);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole cause chain, once, so a 5xx is diagnosable from one line.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.0.insert(field.name().into(), Value::from(text));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: Write + Send + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut Visitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(SpanFields(fields)) = ext.get_mut::<SpanFields>() {
                values.record(&mut Visitor(fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        line.insert("timestamp".into(), Value::from(now));
        line.insert(
            "level".into(),
            Value::from(event.metadata().level().as_str()),
        );
        // The service whose work this is, when the process hosts several.
        let scoped = crate::identity::scoped();
        let identity = scoped.as_deref().unwrap_or(&self.identity);
        line.insert("service".into(), Value::from(identity.service.as_str()));
        line.insert("instance".into(), Value::from(identity.instance.as_str()));
        line.insert("target".into(), Value::from(event.metadata().target()));
        // Outer spans first, so an inner span's field wins over an outer one's.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (k, v) in fields {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        event.record(&mut Visitor(&mut line));
        let Ok(mut text) = serde_json::to_vec(&line) else {
            return;
        };
        text.push(b'\n');
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_carry_identity_span_fields_and_message() {
        let buf = Buf::default();
        let layer = JsonLayer::new(
            Identity {
                service: "catalog".into(),
                instance: "catalog-1".into(),
            },
            buf.clone(),
        );
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "req-42");
            let _guard = span.enter();
            tracing::info!(status = 200u64, "request finished");
        });
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
        let line: Value = serde_json::from_str(text.trim()).expect("one json line");
        assert_eq!(line["service"], "catalog");
        assert_eq!(line["instance"], "catalog-1");
        assert_eq!(line["request_id"], "req-42");
        assert_eq!(line["message"], "request finished");
        assert_eq!(line["status"], 200);
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].as_str().is_some_and(|t| t.contains('T')));
    }

    #[tokio::test]
    async fn a_scoped_service_signs_its_own_lines() {
        let buf = Buf::default();
        let layer = JsonLayer::new(
            Identity {
                service: "emporium".into(),
                instance: "emporium-1".into(),
            },
            buf.clone(),
        );
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let cart = Arc::new(Identity {
            service: "cart".into(),
            instance: "cart-1".into(),
        });
        crate::identity::scope(cart, async { tracing::info!("in cart") }).await;
        tracing::info!("outside");
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["service"], "cart");
        assert_eq!(lines[0]["instance"], "cart-1");
        assert_eq!(lines[1]["service"], "emporium");
    }
}
