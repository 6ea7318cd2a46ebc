//! A baggage API in the manner of FastStream's: create baggage, read it in
//! a handler, set / remove / clear entries, propagate it on publish, stop
//! propagating it; for batches, one merged view plus each message's own.
//!
//! Baggage lives in the OpenTelemetry [`Context`]; these types are a
//! mutable view of it. Inside a message handler run by this crate
//! ([`crate::messaging::Operation::process`] and the broker helpers built
//! on it) changes travel on by themselves, as in FastStream: `set`,
//! `remove` and `clear` write through to the handler's live baggage, and
//! whatever the handler then publishes or calls carries the changed
//! baggage, with no `attach`. Elsewhere, changes take effect for code run
//! under [`CurrentBaggage::context`] (or after [`CurrentBaggage::attach`]).
//!
//! ```
//! use sightline_sdk::baggage::{Baggage, CurrentBaggage};
//!
//! // Producer: start baggage and write it as a `baggage` header.
//! let mut headers = std::collections::HashMap::new();
//! Baggage::new([("hello", "world")]).to_headers(&mut headers);
//! assert_eq!(headers["baggage"], "hello=world");
//!
//! // Consumer: read it, change it, and run the next publish under it.
//! let _g = Baggage::new([("hello", "world")]).attach();
//! let mut baggage = CurrentBaggage::current();
//! assert_eq!(baggage.get("hello"), Some("world"));
//! baggage.remove("hello");
//! baggage.set("user-id", "1");
//! let _g2 = baggage.attach(); // what is published from here carries user-id=1 only
//! assert_eq!(CurrentBaggage::current().get_all().len(), 1);
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::{Context, ContextGuard, KeyValue};
use opentelemetry_sdk::propagation::BaggagePropagator;

/// Entries by key.
pub type Entries = BTreeMap<String, String>;

fn entries_of(cx: &Context) -> Entries {
    cx.baggage().iter().map(|(k, (v, _))| (k.as_str().to_owned(), v.as_str().to_owned())).collect()
}

fn with_entries(cx: &Context, entries: &Entries) -> Context {
    if entries.is_empty() {
        return cx.with_cleared_baggage();
    }
    let b: opentelemetry::baggage::Baggage =
        entries.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
    cx.with_baggage(b)
}

/// A handler's live baggage: what `CurrentBaggage` changes write to, and
/// what injection and new spans read ([`effective`]). `None` inside is
/// "unchanged"; an inert slot shadows an outer one (a context made with
/// explicit baggage is not overridden by the handler's).
#[derive(Clone, Debug, Default)]
pub(crate) struct LiveBaggage(Option<Arc<Mutex<Option<Entries>>>>);

impl LiveBaggage {
    pub(crate) fn live() -> LiveBaggage {
        LiveBaggage(Some(Arc::default()))
    }

    fn read(&self) -> Option<Entries> {
        self.0.as_ref().and_then(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }

    fn write(&self, entries: &Entries) {
        if let Some(m) = &self.0 {
            *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(entries.clone());
        }
    }
}

/// `cx` with a handler's changed baggage applied, if any: what is
/// injected and what new spans see.
pub(crate) fn effective(cx: &Context) -> Context {
    match cx.get::<LiveBaggage>().and_then(LiveBaggage::read) {
        Some(entries) => with_entries(cx, &entries).with_value(LiveBaggage::default()),
        None => cx.clone(),
    }
}

/// New baggage to start propagating (FastStream's `Baggage({...})`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    entries: Entries,
}

impl Baggage {
    /// Baggage with these entries.
    pub fn new<I, K, V>(entries: I) -> Baggage
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Baggage { entries: entries.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// Writes the W3C `baggage` header into `carrier` (any of
    /// [`crate::propagation`]'s injectors, or a `HashMap`).
    pub fn to_headers(&self, carrier: &mut dyn Injector) {
        BaggagePropagator::new().inject_context(&with_entries(&Context::new(), &self.entries), carrier);
    }

    /// The current context with this baggage (replacing any).
    pub fn context(&self) -> Context {
        with_entries(&Context::current(), &self.entries).with_value(LiveBaggage::default())
    }

    /// Makes this baggage current until the guard drops (same thread).
    /// In async code prefer running the future under [`Baggage::context`]
    /// with `opentelemetry::context::FutureExt::with_context`.
    pub fn attach(&self) -> ContextGuard {
        self.context().attach()
    }
}

/// The baggage a handler received, to read and change
/// (FastStream's `CurrentBaggage`).
#[derive(Clone, Debug, Default)]
pub struct CurrentBaggage {
    entries: Entries,
    batch: Vec<Entries>,
    live: LiveBaggage,
}

impl PartialEq for CurrentBaggage {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries && self.batch == other.batch
    }
}

impl Eq for CurrentBaggage {}

/// Each message's own baggage in a batch, stored in the batch's context.
#[derive(Clone, Debug)]
pub(crate) struct BatchBaggage(pub(crate) Vec<Entries>);

impl CurrentBaggage {
    /// The baggage of the current context.
    pub fn current() -> CurrentBaggage {
        CurrentBaggage::from_context(&Context::current())
    }

    /// The baggage of `cx`.
    pub fn from_context(cx: &Context) -> CurrentBaggage {
        let live = cx.get::<LiveBaggage>().cloned().unwrap_or_default();
        let entries = live.read().unwrap_or_else(|| entries_of(cx));
        let batch = cx.get::<BatchBaggage>().map(|b| b.0.clone()).unwrap_or_default();
        CurrentBaggage { entries, batch, live }
    }

    /// Reads baggage from a carrier (the `baggage` header only).
    pub fn from_headers(carrier: &dyn Extractor) -> CurrentBaggage {
        CurrentBaggage::from_context(&BaggagePropagator::new().extract_with_context(&Context::new(), carrier))
    }

    /// All entries; in a batch, the merge of every message's baggage (a
    /// later message's value wins for the same key).
    pub fn get_all(&self) -> &Entries {
        &self.entries
    }

    /// One entry.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Each message's own baggage, in batch order (empty outside a batch).
    pub fn get_all_batch(&self) -> &[Entries] {
        &self.batch
    }

    /// Sets an entry (inside a handler: for everything it sends from now on).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.insert(key.into(), value.into());
        self.live.write(&self.entries);
    }

    /// Removes an entry.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let removed = self.entries.remove(key);
        self.live.write(&self.entries);
        removed
    }

    /// Removes every entry: nothing is propagated further.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.live.write(&self.entries);
    }

    /// The current context with these entries as its baggage.
    pub fn context(&self) -> Context {
        let cx = with_entries(&Context::current(), &self.entries).with_value(LiveBaggage::default());
        if self.batch.is_empty() { cx } else { cx.with_value(BatchBaggage(self.batch.clone())) }
    }

    /// Makes these entries current until the guard drops (same thread).
    pub fn attach(&self) -> ContextGuard {
        self.context().attach()
    }
}

/// Merges message baggages for a batch: every key, later messages winning.
pub(crate) fn merge(batch: &[Entries]) -> Entries {
    let mut merged = Entries::new();
    for e in batch {
        merged.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    merged
}

/// The current context without baggage: what is sent from code run under
/// it carries no `baggage` header (stop propagating), while the trace
/// itself continues.
pub fn without_baggage() -> Context {
    Context::current().with_cleared_baggage().with_value(LiveBaggage::default())
}

/// Stops propagating baggage from here until the guard drops (same thread).
pub fn stop_propagation() -> ContextGuard {
    without_baggage().attach()
}

pub(crate) fn batch_context(base: &Context, batch: Vec<Entries>) -> Context {
    let merged = merge(&batch);
    with_entries(base, &merged).with_value(BatchBaggage(batch)).with_value(LiveBaggage::live())
}

pub(crate) fn entries(cx: &Context) -> Entries {
    entries_of(cx)
}
