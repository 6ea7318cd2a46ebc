//! Resource detection: what identifies this process in the backend besides
//! `service.name` (the semantic conventions' `service.instance.id`,
//! `host.*`, `os.type`, `process.*`, `telemetry.sdk.*`).
//!
//! Detected values are the weakest: `OTEL_RESOURCE_ATTRIBUTES` and
//! [`crate::Options::resource_attribute`] override them (so a deployment
//! can set a stable `service.instance.id`, e.g. the pod name).

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceId;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};

/// The opentelemetry-rust release this crate is built on.
pub(crate) const OTEL_SDK_VERSION: &str = "0.33.1";

/// A random (version 4) UUID, from the SDK's id generator (so no UUID
/// crate): a fresh `service.instance.id` per process, as the spec
/// recommends when none is configured.
pub(crate) fn uuid_v4() -> String {
    uuid_from(RandomIdGenerator::default().new_trace_id())
}

fn uuid_from(id: TraceId) -> String {
    let mut b = id.to_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
}

/// `host.arch` per the semantic conventions' values.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

/// The detected attributes, weakest first.
pub(crate) fn detect() -> Vec<KeyValue> {
    let mut out = vec![
        KeyValue::new("service.instance.id", uuid_v4()),
        KeyValue::new("telemetry.sdk.name", "opentelemetry"),
        KeyValue::new("telemetry.sdk.language", "rust"),
        KeyValue::new("telemetry.sdk.version", OTEL_SDK_VERSION),
        KeyValue::new("telemetry.distro.name", "sightline-sdk"),
        KeyValue::new("telemetry.distro.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("host.arch", host_arch()),
        KeyValue::new("os.type", std::env::consts::OS),
        KeyValue::new("process.pid", i64::from(std::process::id())),
        KeyValue::new("process.runtime.name", "rust"),
    ];
    if let Some(h) = host_name() {
        out.push(KeyValue::new("host.name", h));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(name) = exe.file_name().and_then(|n| n.to_str()) {
            out.push(KeyValue::new("process.executable.name", name.to_owned()));
        }
        out.push(KeyValue::new("process.executable.path", exe.display().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuid_has_the_v4_shape() {
        let u = super::uuid_from(opentelemetry::trace::TraceId::from(u128::MAX));
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let r = super::uuid_v4();
        assert_eq!(r.len(), 36);
        assert_eq!(&r[14..15], "4");
        assert_ne!(r, super::uuid_v4(), "fresh per call");
    }
}
