//! Prometheus remote write 1.0 messages (`prompb/remote.proto`,
//! `types.proto`), as hand-written prost structs: only what a sender needs.

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub(crate) timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: labels sorted by name, samples by time.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub(crate) labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Label {
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    #[prost(string, tag = "2")]
    pub(crate) value: String,
}

/// `prometheus.Sample`: a value at a time in ms since the Unix epoch.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Sample {
    #[prost(double, tag = "1")]
    pub(crate) value: f64,
    #[prost(int64, tag = "2")]
    pub(crate) timestamp: i64,
}

/// Groups samples into series (one per label set, samples in time order).
pub(crate) fn write_request(samples: Vec<super::series::Sample>) -> WriteRequest {
    let mut index: std::collections::HashMap<Vec<(String, String)>, usize> = std::collections::HashMap::new();
    let mut series: Vec<TimeSeries> = Vec::new();
    for s in samples {
        let sample = Sample { value: s.value, timestamp: s.timestamp_ms };
        match index.get(&s.labels) {
            Some(i) => series[*i].samples.push(sample),
            None => {
                index.insert(s.labels.clone(), series.len());
                series.push(TimeSeries {
                    labels: s.labels.into_iter().map(|(name, value)| Label { name, value }).collect(),
                    samples: vec![sample],
                });
            }
        }
    }
    for ts in &mut series {
        // Prometheus refuses two different values at one time in a series
        // (the whole request), so keep one.
        ts.samples.sort_by_key(|s| s.timestamp);
        ts.samples.dedup_by_key(|s| s.timestamp);
    }
    WriteRequest { timeseries: series }
}
