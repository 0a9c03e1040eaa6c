//! Distributed traces: W3C trace context everywhere, OpenTelemetry spans exported
//! over OTLP when asked.
//!
//! Every inbound request, outbound call, database transaction and handled event gets
//! a [`Span`]: a trace id and span id that go into log lines and `traceparent`
//! headers. That part is always on, because logs need it. Export is separate:
//! [`init`] installs an OTLP/HTTP exporter only when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Without it no span data is ever
//! built, so tracing costs two random ids per span.
//!
//! Why not `tracing-opentelemetry`? It builds an OpenTelemetry span for every
//! `tracing` span and attaches its context on every poll, and its ids only exist
//! while it is installed. With it off, logs would have no trace id, and with it on,
//! every span of every library would pay for it. Emporium traces four kinds of
//! operations, named here, and writes the finished spans straight to the SDK's batch
//! processor.
//!
//! Standard variables honoured: `OTEL_EXPORTER_OTLP_*` (endpoint, headers, timeout),
//! `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (default
//! `parentbased_always_on`), `OTEL_BSP_*` (batching), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_SDK_DISABLED` and `OTEL_TRACES_EXPORTER=none`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::SystemTime;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Config, IdGenerator, SamplingDecision, ShouldSample, SpanData, SpanEvents,
    SpanLinks, SpanProcessor,
};

pub use opentelemetry::trace::SpanKind as Kind;

use crate::Identity;

/// Which spans are kept and how ids are made: from the OTel environment variables.
struct Tracing {
    sampler: Box<dyn ShouldSample>,
    ids: Box<dyn IdGenerator>,
    export: Option<Export>,
}

struct Export {
    /// The process's own: its resource names the service the process hosts.
    processor: BatchSpanProcessor,
    /// In a process hosting several services, one more per service, made when its
    /// first span ends, so each span's resource names the service it belongs to.
    per_service: RwLock<HashMap<String, Arc<BatchSpanProcessor>>>,
    scope: InstrumentationScope,
}

impl Export {
    /// Hands a finished span to the processor of `owner`'s service.
    fn export(&self, owner: Option<&Identity>, span: SpanData) {
        let Some(owner) = owner else {
            return self.processor.on_end(span);
        };
        let found = self
            .per_service
            .read()
            .ok()
            .and_then(|m| m.get(&owner.service).cloned());
        let processor = match found {
            Some(p) => p,
            None => match processor(owner) {
                Ok(p) => {
                    let p = Arc::new(p);
                    if let Ok(mut m) = self.per_service.write() {
                        m.entry(owner.service.clone()).or_insert(p).clone()
                    } else {
                        p
                    }
                }
                Err(e) => {
                    eprintln!("emporium: span export for {} is off: {e}", owner.service);
                    return;
                }
            },
        };
        processor.on_end(span);
    }
}

static TRACING: OnceLock<Tracing> = OnceLock::new();

fn tracing_state() -> &'static Tracing {
    TRACING.get_or_init(|| configure(None))
}

/// Is span export asked for by the environment?
fn export_requested() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.trim() == "none");
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

fn configure(identity: Option<&Identity>) -> Tracing {
    let config = Config::default();
    let export = identity
        .filter(|_| export_requested())
        .and_then(|identity| match exporter(identity) {
            Ok(export) => Some(export),
            Err(e) => {
                eprintln!("emporium: span export is off: {e}");
                None
            }
        });
    Tracing {
        sampler: config.sampler,
        ids: config.id_generator,
        export,
    }
}

fn exporter(identity: &Identity) -> Result<Export, String> {
    if let Ok(protocol) = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        && protocol != "http/protobuf"
    {
        return Err(format!(
            "OTLP protocol {protocol:?} is not supported; use http/protobuf"
        ));
    }
    Ok(Export {
        processor: processor(identity)?,
        per_service: RwLock::new(HashMap::new()),
        scope: InstrumentationScope::builder("emporium")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    })
}

/// A batch processor exporting over OTLP/HTTP with `identity` as the resource.
fn processor(identity: &Identity) -> Result<BatchSpanProcessor, String> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| e.to_string())?;
    let mut processor = BatchSpanProcessor::builder(exporter).build();
    let resource = Resource::builder()
        .with_service_name(identity.service.clone())
        .with_attributes([
            KeyValue::new("service.namespace", "emporium"),
            KeyValue::new("service.instance.id", identity.instance.clone()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    processor.set_resource(&resource);
    Ok(processor)
}

/// Sets up tracing for this process; exports spans when the environment asks for it.
/// Only the first call counts.
pub fn init(identity: &Identity) {
    TRACING.get_or_init(|| configure(Some(identity)));
}

/// Sends the spans still queued and stops the exporter (at process exit).
pub fn shutdown() {
    let Some(export) = TRACING.get().and_then(|t| t.export.as_ref()) else {
        return;
    };
    let others: Vec<_> = export
        .per_service
        .read()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    for processor in std::iter::once(&export.processor).chain(others.iter().map(|p| &**p)) {
        if let Err(e) = processor.shutdown() {
            eprintln!("emporium: flushing spans failed: {e}");
        }
    }
}

/// A W3C trace context: trace id, span id, sampled flag and `tracestate`.
pub type TraceContext = SpanContext;

/// Reads `traceparent` and `tracestate` from request headers.
pub fn extract(headers: &http::HeaderMap) -> Option<TraceContext> {
    struct Headers<'a>(&'a http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    let traceparent = headers.get("traceparent")?;
    // The common case (version 00, no `tracestate`) read directly; anything else
    // through the propagator, which the fast path agrees with (tested).
    if !headers.contains_key("tracestate")
        && let Some(cx) = parse_version_00(traceparent.as_bytes())
    {
        return Some(cx);
    }
    from_carrier(&Headers(headers))
}

/// A version-00 `traceparent` exactly as the W3C spells it (55 bytes, lowercase
/// hex), with no `tracestate`; `None` for anything else, left to the propagator.
fn parse_version_00(value: &[u8]) -> Option<TraceContext> {
    let lower_hex = |b: &[u8]| b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    if value.len() != 55
        || !value.starts_with(b"00-")
        || value[35] != b'-'
        || value[52] != b'-'
        || !lower_hex(&value[3..35])
        || !lower_hex(&value[36..52])
        || !lower_hex(&value[53..55])
    {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let trace_id = TraceId::from_hex(&text[3..35]).ok()?;
    let span_id = SpanId::from_hex(&text[36..52]).ok()?;
    let flags = u8::from_str_radix(&text[53..55], 16).ok()?;
    // Only the sampled bit is kept, as the propagator does (W3C: other flags are
    // accepted and zeroed).
    let flags = TraceFlags::new(flags) & TraceFlags::SAMPLED;
    valid(&SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        TraceState::default(),
    ))
}

/// Parses a `traceparent` value (as carried inside an event).
pub fn parse_traceparent(value: &str) -> Option<TraceContext> {
    struct Traceparent<'a>(&'a str);
    impl Extractor for Traceparent<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            (key == "traceparent").then_some(self.0)
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent"]
        }
    }
    from_carrier(&Traceparent(value))
}

fn from_carrier(carrier: &dyn Extractor) -> Option<TraceContext> {
    valid(
        TraceContextPropagator::new()
            .extract(carrier)
            .span()
            .span_context(),
    )
}

fn valid(cx: &SpanContext) -> Option<SpanContext> {
    cx.is_valid().then(|| cx.clone())
}

/// Writes `traceparent` (and `tracestate` when not empty) into request headers.
pub fn inject(cx: &TraceContext, headers: &mut http::HeaderMap) {
    struct Headers<'a>(&'a mut http::HeaderMap);
    impl Injector for Headers<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(key.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                self.0.insert(name, value);
            }
        }
    }
    if !cx.is_valid() {
        return;
    }
    if let Ok(value) = http::HeaderValue::from_bytes(&traceparent_bytes(cx)) {
        headers.insert(http::HeaderName::from_static("traceparent"), value);
    }
    if cx.trace_state() != &TraceState::NONE {
        let context = Context::new().with_remote_span_context(cx.clone());
        TraceContextPropagator::new().inject_context(&context, &mut Headers(headers));
    }
}

/// `00-<trace id>-<span id>-<flags>`.
pub fn traceparent(cx: &TraceContext) -> String {
    String::from_utf8_lossy(&traceparent_bytes(cx)).into_owned()
}

/// `traceparent` as bytes, written without the formatting machinery (it is set on
/// every traced call).
fn traceparent_bytes(cx: &TraceContext) -> [u8; 55] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 55];
    let mut hex = |at: usize, bytes: &[u8]| {
        for (i, b) in bytes.iter().enumerate() {
            out[at + 2 * i] = HEX[usize::from(b >> 4)];
            out[at + 2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
    };
    hex(0, &[0]);
    hex(3, &cx.trace_id().to_bytes());
    hex(36, &cx.span_id().to_bytes());
    hex(53, &[cx.trace_flags().to_u8()]);
    out
}

/// One timed operation of a trace. Ends (and is exported, if sampled and export is
/// on) when dropped.
pub struct Span {
    context: SpanContext,
    recording: Option<Box<Recording>>,
}

struct Recording {
    /// The service this span belongs to, when the process hosts several.
    owner: Option<Arc<Identity>>,
    parent: SpanId,
    parent_remote: bool,
    name: Cow<'static, str>,
    kind: SpanKind,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    links: Vec<Link>,
    status: Status,
}

impl Span {
    /// Starts a span, the child of `parent` or the root of a new trace.
    pub fn start(
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: Option<&TraceContext>,
    ) -> Span {
        let state = tracing_state();
        let parent = parent.filter(|p| p.is_valid());
        let trace_id = parent.map_or_else(|| state.ids.new_trace_id(), |p| p.trace_id());
        let span_id = state.ids.new_span_id();
        let name = name.into();
        let sampled = sampled(state, parent, trace_id, &name, &kind);
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let trace_state = parent.map_or(TraceState::NONE, |p| p.trace_state().clone());
        let context = SpanContext::new(trace_id, span_id, flags, false, trace_state);
        let recording = (sampled && state.export.is_some()).then(|| {
            Box::new(Recording {
                owner: crate::identity::scoped().filter(|_| crate::identity::several()),
                parent: parent.map_or(SpanId::INVALID, |p| p.span_id()),
                parent_remote: parent.is_some_and(|p| p.is_remote()),
                name,
                kind,
                start: SystemTime::now(),
                attributes: Vec::new(),
                links: Vec::new(),
                status: Status::Unset,
            })
        });
        Span { context, recording }
    }

    /// This span's context: what children and `traceparent` headers carry.
    pub fn context(&self) -> &TraceContext {
        &self.context
    }

    /// The trace id, as 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.context.trace_id().to_string()
    }

    /// The span id, as 16 hex digits.
    pub fn span_id(&self) -> String {
        self.context.span_id().to_string()
    }

    /// Will this span be exported? Skip building costly attributes when not.
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// Adds an attribute (kept only when recording).
    pub fn set_attribute(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(r) = &mut self.recording {
            r.attributes.push(KeyValue::new(key, value));
        }
    }

    /// Renames the span (when recording), e.g. once the route is known.
    pub fn set_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(r) = &mut self.recording {
            r.name = name.into();
        }
    }

    /// Links this span to another trace's span (an event's producer).
    pub fn add_link(&mut self, cx: &TraceContext) {
        if let Some(r) = &mut self.recording
            && cx.is_valid()
        {
            r.links.push(Link::with_context(cx.clone()));
        }
    }

    /// Marks the operation as failed.
    pub fn set_error(&mut self, description: impl Into<Cow<'static, str>>) {
        if let Some(r) = &mut self.recording {
            r.status = Status::error(description);
        }
    }

    /// Ends the span now (dropping it does the same).
    pub fn end(self) {}
}

fn sampled(
    state: &Tracing,
    parent: Option<&TraceContext>,
    trace_id: TraceId,
    name: &str,
    kind: &SpanKind,
) -> bool {
    let parent_cx = parent.map(|p| Context::new().with_remote_span_context(p.clone()));
    let decision = state
        .sampler
        .should_sample(parent_cx.as_ref(), trace_id, name, kind, &[], &[])
        .decision;
    decision == SamplingDecision::RecordAndSample
}

impl Drop for Span {
    fn drop(&mut self) {
        let Some(r) = self.recording.take() else {
            return;
        };
        let Some(export) = tracing_state().export.as_ref() else {
            return;
        };
        let mut links = SpanLinks::default();
        links.links = r.links;
        export.export(
            r.owner.as_deref(),
            SpanData {
                span_context: self.context.clone(),
                parent_span_id: r.parent,
                parent_span_is_remote: r.parent_remote,
                span_kind: r.kind,
                name: r.name,
                start_time: r.start,
                end_time: SystemTime::now(),
                attributes: r.attributes,
                dropped_attributes_count: 0,
                events: SpanEvents::default(),
                links,
                status: r.status,
                instrumentation_scope: export.scope.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_children_share_the_trace() {
        let parent = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid traceparent");
        assert!(parent.is_sampled());
        let child = Span::start("child", SpanKind::Server, Some(&parent));
        assert_eq!(child.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(child.span_id(), "00f067aa0ba902b7");
        let header = traceparent(child.context());
        assert!(header.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(
            header.ends_with("-01"),
            "parent's sampled flag kept: {header}"
        );
        let again = parse_traceparent(&header).expect("parses");
        assert_eq!(again.span_id(), child.context().span_id());
    }

    #[test]
    fn bad_traceparents_are_ignored_and_roots_get_fresh_ids() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?} refused");
        }
        let a = Span::start("a", SpanKind::Server, None);
        let b = Span::start("b", SpanKind::Server, None);
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(a.trace_id().len(), 32);
        assert_eq!(a.span_id().len(), 16);
        // Nothing is exported in unit tests, so nothing is recorded.
        assert!(!a.is_recording());
    }

    /// The direct read of `traceparent` answers what the propagator answers, for
    /// the values it takes and for those it leaves to the propagator.
    #[test]
    fn the_fast_traceparent_read_agrees_with_the_propagator() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        for value in [
            format!("00-{id}-00f067aa0ba902b7-01"),
            format!("00-{id}-00f067aa0ba902b7-00"),
            // Unknown flags are accepted and zeroed.
            format!("00-{id}-00f067aa0ba902b7-03"),
            format!("00-{id}-00f067aa0ba902b7-fe"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{id}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase()),
            format!("00-{id}-00F067AA0BA902B7-01"),
            format!("00-{id}-00f067aa0ba902b7-0A"),
            format!("01-{id}-00f067aa0ba902b7-01"),
            format!("ff-{id}-00f067aa0ba902b7-01"),
            format!("00-{id}-00f067aa0ba902b7-01-extra"),
            format!("00-{id}-00f067aa0ba902b7x01"),
            format!("00_{id}-00f067aa0ba902b7-01"),
            format!("00-{}g-00f067aa0ba902b7-01", &id[..31]),
            format!(" 00-{id}-00f067aa0ba902b7-0"),
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "traceparent",
                http::HeaderValue::from_str(&value).expect("header"),
            );
            let fast = extract(&headers);
            let slow = parse_traceparent(&value);
            assert_eq!(fast, slow, "{value:?}");
        }
        // The values above the direct read takes are read by it.
        let sampled = parse_version_00(format!("00-{id}-00f067aa0ba902b7-03").as_bytes())
            .expect("read directly");
        assert_eq!(sampled.trace_flags(), TraceFlags::SAMPLED);
        assert!(sampled.is_remote());
        assert!(parse_version_00(format!("01-{id}-00f067aa0ba902b7-01").as_bytes()).is_none());
    }

    #[test]
    fn traceparent_is_written_as_the_w3c_spells_it() {
        let cx = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(
            traceparent(&cx),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let mut out = http::HeaderMap::new();
        inject(&cx, &mut out);
        assert_eq!(
            out["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let unsampled = SpanContext::new(
            cx.trace_id(),
            cx.span_id(),
            TraceFlags::default(),
            false,
            TraceState::default(),
        );
        assert!(traceparent(&unsampled).ends_with("-00"));
    }

    #[test]
    fn tracestate_travels_with_the_context() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            ),
        );
        headers.insert("tracestate", http::HeaderValue::from_static("vendor=abc"));
        let parent = extract(&headers).expect("valid");
        let child = Span::start("c", SpanKind::Client, Some(&parent));
        let mut out = http::HeaderMap::new();
        inject(child.context(), &mut out);
        assert_eq!(out["tracestate"], "vendor=abc");
        assert!(
            out["traceparent"]
                .to_str()
                .is_ok_and(|v| v.ends_with("-00")),
            "unsampled parent, unsampled child"
        );
    }
}
