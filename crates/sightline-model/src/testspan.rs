//! [`Span::test`]: a span for tests, so a test names only the fields it
//! is about instead of repeating the 19-field literal. Hidden from the
//! docs: production code builds spans from what it decodes.

use std::sync::Arc;

use crate::{KeyValue, Resource, Scope, Span, SpanId, SpanKind, Status, TraceId};

impl Span {
    /// A span named `name` with every other field empty: no parent, flags
    /// 0, kind unspecified, start and end 0, no attributes, events or
    /// links, unset status, an empty resource (so `unknown_service`) and
    /// scope. The `with_*` setters fill in the rest.
    #[doc(hidden)]
    pub fn test(trace_id: TraceId, span_id: SpanId, name: &str) -> Span {
        Span {
            trace_id,
            span_id,
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: name.to_owned(),
            kind: SpanKind::Unspecified,
            start_time_unix_nano: 0,
            end_time_unix_nano: 0,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Status::default(),
            resource: Arc::new(Resource::new(Vec::new(), 0, String::new())),
            scope: Arc::new(Scope::default()),
        }
    }

    /// This span with parent `parent`.
    #[doc(hidden)]
    pub fn with_parent(mut self, parent: Option<SpanId>) -> Span {
        self.parent_span_id = parent;
        self
    }

    /// This span with trace flags `flags`.
    #[doc(hidden)]
    pub fn with_flags(mut self, flags: u32) -> Span {
        self.flags = flags;
        self
    }

    /// This span with kind `kind`.
    #[doc(hidden)]
    pub fn with_kind(mut self, kind: SpanKind) -> Span {
        self.kind = kind;
        self
    }

    /// This span from `start` to `end` (ns since the Unix epoch).
    #[doc(hidden)]
    pub fn with_times(mut self, start: u64, end: u64) -> Span {
        self.start_time_unix_nano = start;
        self.end_time_unix_nano = end;
        self
    }

    /// This span with attributes `attributes`.
    #[doc(hidden)]
    pub fn with_attributes(mut self, attributes: Vec<KeyValue>) -> Span {
        self.attributes = attributes;
        self
    }

    /// This span with status `status`.
    #[doc(hidden)]
    pub fn with_status(mut self, status: Status) -> Span {
        self.status = status;
        self
    }

    /// This span of `resource` (shared).
    #[doc(hidden)]
    pub fn with_resource(mut self, resource: &Arc<Resource>) -> Span {
        self.resource = Arc::clone(resource);
        self
    }

    /// This span of `scope` (shared).
    #[doc(hidden)]
    pub fn with_scope(mut self, scope: &Arc<Scope>) -> Span {
        self.scope = Arc::clone(scope);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_fill_the_named_fields_only() {
        let trace = TraceId::from_bytes([1; 16]).unwrap();
        let (id, parent) = (SpanId::from_bytes([2; 8]).unwrap(), SpanId::from_bytes([3; 8]).unwrap());
        let resource = Arc::new(Resource::new(vec![KeyValue::new("service.name", "shop")], 0, String::new()));
        let span = Span::test(trace, id, "GET /")
            .with_parent(Some(parent))
            .with_kind(SpanKind::Server)
            .with_times(10, 30)
            .with_resource(&resource);
        assert_eq!((span.trace_id, span.span_id, span.name.as_str()), (trace, id, "GET /"));
        assert_eq!(
            (span.parent_span_id, span.kind, span.duration_nanos()),
            (Some(parent), SpanKind::Server, 20)
        );
        assert_eq!(span.service_name(), "shop");
        assert!(span.attributes.is_empty() && span.events.is_empty() && span.links.is_empty());
        assert_eq!(Span::test(trace, id, "x").service_name(), crate::UNKNOWN_SERVICE);
    }
}
