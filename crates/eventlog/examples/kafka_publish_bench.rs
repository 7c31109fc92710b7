//! Publish-only throughput on Kafka: our `EventLog::append` (as User Support publishes, in
//! chunks of 2,000) beside a bare rdkafka producer sending the very same records (same keys,
//! headers, payloads, producer settings), each to a fresh topic on the same broker.
//!
//! ```sh
//! BOOTSTRAP=$(bash scripts/kafka.sh start)
//! cargo run --release -p returns-eventlog --example kafka_publish_bench -- "$BOOTSTRAP" 100000
//! ```

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use returns_domain::Generator;
use returns_eventlog::kafka::{kafka_headers, KafkaConfig, KafkaLog, PRODUCER};
use returns_eventlog::{wire, EventLog, OutRecord};

const CHUNK: usize = 2_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:19092".into());
    let n: u64 = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let run = uuid::Uuid::new_v4().simple().to_string();

    let generator = Generator::new(42);
    let records: Vec<OutRecord> = generator
        .requests(0..n)
        .map(|r| wire::encode_refund_request(&r, &wire::refund_request_envelope(&r)))
        .collect();
    let bytes: usize = records.iter().map(|r| r.payload.len()).sum();
    println!(
        "{n} RefundRequest records, {} bytes of payload on average",
        bytes / records.len().max(1)
    );

    // 1. Our path: KafkaLog::append, chunk by chunk, each chunk awaited.
    let log = KafkaLog::open(KafkaConfig::new(bootstrap.clone())).await?;
    let topic = format!("bench-eventlog-{run}");
    log.ensure_topic(&topic).await?;
    let started = Instant::now();
    for chunk in records.chunks(CHUNK) {
        log.append(&topic, chunk.to_vec()).await?;
    }
    report("EventLog::append (chunks of 2,000)", n, started.elapsed());

    // 2. A bare rdkafka producer with the same settings: send everything, then wait.
    let topic = format!("bench-bare-{run}");
    log.ensure_topic(&topic).await?;
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &bootstrap);
    for (k, v) in PRODUCER {
        config.set(*k, *v);
    }
    let producer: FutureProducer = config.create()?;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(records.len());
    for r in &records {
        let mut record = FutureRecord::to(&topic)
            .key(r.key.as_bytes())
            .payload(&r.payload)
            .headers(kafka_headers(&r.headers));
        loop {
            match producer.send_result(record) {
                Ok(d) => break deliveries.push(d),
                Err((_, back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for d in deliveries {
        d.await?.map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(30))?;
    report("bare rdkafka FutureProducer", n, started.elapsed());
    Ok(())
}

fn report(what: &str, n: u64, took: Duration) {
    println!(
        "{what:<40} {n} records in {:>6.2} s = {:>8.0} records/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}
