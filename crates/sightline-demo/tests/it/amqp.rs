//! The AMQP carrier against a real RabbitMQ: a message published with
//! `messaging::Operation` and `AmqpInjector` through `rabbitmq-server`
//! (Debian package, started on free ports with its own epmd and data
//! directory) and consumed with lapin continues the trace and carries the
//! baggage. Spans are checked with the SDK's in-memory exporter.

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use opentelemetry_sdk::trace::InMemorySpanExporter;
use sightline_sdk::baggage::{Baggage, CurrentBaggage};
use sightline_sdk::messaging::Operation;
use sightline_sdk::opentelemetry::context::FutureExt as _;
use sightline_sdk::opentelemetry::propagation::Extractor as _;
use sightline_sdk::opentelemetry::trace::{SpanKind, TraceContextExt as _};
use sightline_sdk::propagation::{AmqpExtractor, AmqpInjector};
use sightline_sdk::{Options, init_with_env};

use crate::harness::{Proc, free_port, server_binary, wait_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_carries_trace_context_and_baggage() {
    // The broker script itself: /usr/sbin/rabbitmq-server is a wrapper that
    // switches to the `rabbitmq` user, which cannot use our temp dir.
    let direct = std::path::PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
    let rabbit = if direct.is_file() { direct } else { server_binary("rabbitmq-server") };
    let epmd = server_binary("epmd");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    {
        use std::os::unix::fs::PermissionsExt as _;
        // in case the broker runs as another user after all
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).expect("chmod temp dir");
    }
    let (amqp_port, dist_port, epmd_port) = (free_port(), free_port(), free_port());
    // Our own epmd on a free port, so nothing outlives the test.
    let mut epmd = Proc::spawn("epmd", d, Command::new(epmd).args(["-port", &epmd_port.to_string()]));
    wait_port(epmd_port, &mut epmd, Duration::from_secs(20)).await;
    let node = format!("sightline{amqp_port}@localhost");
    let mut server = Proc::spawn(
        "rabbitmq",
        d,
        Command::new(rabbit)
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", d.join("rabbit.pid")),
    );
    // Stops the broker however the test ends: the script stops the Erlang
    // VM on TERM; the VM's own pid (from the pid file) is killed if it is
    // still there after that.
    struct Broker {
        proc: Proc,
        pid_file: std::path::PathBuf,
        node: String,
    }
    impl Drop for Broker {
        fn drop(&mut self) {
            self.proc.terminate(Duration::from_secs(30));
            let Ok(pid) = std::fs::read_to_string(&self.pid_file) else { return };
            let pid = pid.trim();
            // only if that pid is still our broker's VM
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&self.node) {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }
    let pid_file = d.join("rabbit.pid");
    wait_port(amqp_port, &mut server, Duration::from_secs(90)).await;
    let server = Broker { proc: server, pid_file, node: node.clone() };

    let exporter = InMemorySpanExporter::default();
    let telemetry = init_with_env(
        Options::new("amqp-test").span_exporter(exporter.clone()).install_globals(false),
        |_| None,
    )
    .expect("telemetry");

    let uri = format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f");
    let conn = Connection::connect(&uri, ConnectionProperties::default()).await.expect("connect to rabbitmq");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .queue_declare("orders".into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("declare queue");

    // Producer: a publish span under baggage tenant=acme, its context in the headers.
    let publish = async {
        let op = Operation::publish(&telemetry, "rabbitmq", "orders");
        let mut headers = FieldTable::default();
        op.inject(&mut AmqpInjector(&mut headers));
        let producer_span = op.context().span().span_context().span_id();
        let sent = op
            .run(async {
                channel
                    .basic_publish(
                        "".into(),
                        "orders".into(),
                        BasicPublishOptions::default(),
                        b"{\"id\":1}",
                        BasicProperties::default().with_headers(headers),
                    )
                    .await?
                    .await
            })
            .await;
        sent.expect("publish");
        producer_span
    };
    let producer_span = publish.with_context(Baggage::new([("tenant", "acme")]).context()).await;

    // Consumer: continue the trace from the delivered message's headers.
    let mut consumer = channel
        .basic_consume("orders".into(), "test".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("consume");
    let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next())
        .await
        .expect("a delivery within 30s")
        .expect("stream open")
        .expect("delivery");
    let headers = delivery.properties.headers().clone().expect("message headers");
    assert!(AmqpExtractor(&headers).keys().contains(&"traceparent"), "{headers:?}");
    let parent = telemetry.extract(&AmqpExtractor(&headers));
    let tenant = Operation::process(&telemetry, "rabbitmq", "orders", &parent)
        .run(async { Ok::<_, String>(CurrentBaggage::current().get("tenant").map(str::to_owned)) })
        .await
        .expect("process");
    assert_eq!(tenant.as_deref(), Some("acme"), "baggage crossed RabbitMQ");
    delivery.ack(BasicAckOptions::default()).await.expect("ack");
    let _ = conn.close(0, "done".into()).await;

    let spans = exporter.get_finished_spans().expect("spans");
    let producer = spans.iter().find(|s| s.span_kind == SpanKind::Producer).expect("producer span");
    let consumer = spans.iter().find(|s| s.span_kind == SpanKind::Consumer).expect("consumer span");
    assert_eq!(producer.span_context.span_id(), producer_span);
    assert_eq!(producer.name, "publish orders");
    assert_eq!(consumer.name, "process orders");
    assert_eq!(consumer.parent_span_id, producer.span_context.span_id());
    assert_eq!(consumer.span_context.trace_id(), producer.span_context.trace_id());
    drop(server);
    drop(epmd);
}
