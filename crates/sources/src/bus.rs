//! The bus as a source: read a subscription, forward chunks into the intake
//! queue. When the queue is full this waits, the subscription's buffer fills,
//! and the bus drops (and counts) for this subscriber — never blocking publishers.

use switchyard_core::Subscription;
use switchyard_engine::IntakeSender;

/// Largest chunk taken from the subscription at once.
const CHUNK: usize = 256;

/// Forward until the bus stops (or the engine goes away).
pub async fn forward(mut sub: Subscription, intake: IntakeSender) {
    while let Some(first) = sub.recv().await {
        let mut chunk = Vec::with_capacity(CHUNK);
        chunk.push(first);
        while chunk.len() < CHUNK {
            match sub.try_recv() {
                Some(e) => chunk.push(e),
                None => break,
            }
        }
        if intake.send(chunk).await.is_err() {
            tracing::warn!("engine stopped; bus source ends");
            return;
        }
    }
}
