//! Tests of the whole crate through its public API: the conformance table
//! over fixture traces, error cases with positions, Tempo's own
//! valid/invalid query lists, the display round trip, and the pre-filter.

mod conformance;
mod errors;
mod fixtures;
mod plan;
mod results;
mod roundtrip;
mod tempo_examples;
