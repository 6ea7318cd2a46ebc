//! Carriers: where `traceparent`, `tracestate` and `baggage` travel.
//!
//! Each wire gets an injector (writes into the message's headers) and an
//! extractor (reads them), for [`crate::Telemetry::inject`] and
//! [`crate::Telemetry::extract`]:
//!
//! | wire | injector | extractor |
//! |---|---|---|
//! | HTTP (`http::HeaderMap`, axum, reqwest) | [`HeaderInjector`] | [`HeaderExtractor`] |
//! | NATS (`async_nats::HeaderMap`, feature `nats`) | `NatsInjector` | `NatsExtractor` |
//! | AMQP 0-9-1 / RabbitMQ field table (lapin's `FieldTable`, feature `amqp`) | `AmqpInjector` | `AmqpExtractor` |
//! | Kafka record headers as `(String, Vec<u8>)` pairs (feature `kafka`) | `KafkaInjector` | `KafkaExtractor` |
//! | `HashMap<String, String>` | the OTel API implements both | |
//!
//! Names are written lowercase, as W3C Trace Context requires; extractors
//! of case-sensitive maps (NATS, AMQP, Kafka) also find other casings.

use opentelemetry::propagation::{Extractor, Injector};

/// Writes into an `http::HeaderMap` (replacing a previous value).
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Reads from an `http::HeaderMap` (case-insensitive, first value).
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(feature = "nats")]
pub use nats_carrier::{NatsExtractor, NatsInjector};

#[cfg(feature = "nats")]
mod nats_carrier {
    use super::{Extractor, Injector};

    /// Writes into NATS message headers.
    #[derive(Debug)]
    pub struct NatsInjector<'a>(pub &'a mut async_nats::HeaderMap);

    impl Injector for NatsInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key, value);
        }
    }

    /// Reads NATS message headers (exact name first, then any casing).
    #[derive(Debug)]
    pub struct NatsExtractor<'a>(pub &'a async_nats::HeaderMap);

    impl Extractor for NatsExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            if let Some(v) = self.0.get(key) {
                return Some(v.as_str());
            }
            self.0
                .iter()
                .find(|(k, _)| AsRef::<str>::as_ref(*k).eq_ignore_ascii_case(key))
                .and_then(|(_, vs)| vs.first())
                .map(|v| v.as_str())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| AsRef::<str>::as_ref(k)).collect()
        }
    }
}

#[cfg(feature = "amqp")]
pub use amqp_carrier::{AmqpExtractor, AmqpInjector};

#[cfg(feature = "amqp")]
mod amqp_carrier {
    use amq_protocol_types::{AMQPValue, FieldTable, LongString, ShortString};

    use super::{Extractor, Injector};

    /// Writes into an AMQP 0-9-1 field table (message `headers` property;
    /// `lapin::types::FieldTable` is this type) as long strings.
    #[derive(Debug)]
    pub struct AmqpInjector<'a>(pub &'a mut FieldTable);

    impl Injector for AmqpInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(ShortString::from(key), AMQPValue::LongString(LongString::from(value)));
        }
    }

    /// Reads an AMQP field table: long or short string values (other
    /// clients write either), exact name first, then any casing.
    #[derive(Debug)]
    pub struct AmqpExtractor<'a>(pub &'a FieldTable);

    fn as_str(v: &AMQPValue) -> Option<&str> {
        match v {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        }
    }

    impl Extractor for AmqpExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            let inner = self.0.inner();
            if let Some(v) = inner.get(&ShortString::from(key)) {
                return as_str(v);
            }
            inner.iter().find(|(k, _)| k.as_str().eq_ignore_ascii_case(key)).and_then(|(_, v)| as_str(v))
        }
        fn keys(&self) -> Vec<&str> {
            self.0.inner().keys().map(ShortString::as_str).collect()
        }
    }
}

#[cfg(feature = "kafka")]
pub use kafka_carrier::{KafkaExtractor, KafkaInjector};

#[cfg(feature = "kafka")]
mod kafka_carrier {
    use super::{Extractor, Injector};

    /// Writes into Kafka record headers, held as `(name, bytes)` pairs (the
    /// shape rdkafka's `OwnedHeaders` and rskafka's header maps convert
    /// from); replaces an existing header of the same name.
    #[derive(Debug)]
    pub struct KafkaInjector<'a>(pub &'a mut Vec<(String, Vec<u8>)>);

    impl Injector for KafkaInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
            self.0.push((key.to_owned(), value.into_bytes()));
        }
    }

    /// Reads Kafka record headers (last value of a name wins, as Kafka
    /// clients resolve duplicates; values must be UTF-8).
    #[derive(Debug)]
    pub struct KafkaExtractor<'a>(pub &'a [(String, Vec<u8>)]);

    impl Extractor for KafkaExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| k.as_str()).collect()
        }
    }
}
