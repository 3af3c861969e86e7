//! The figures `ingest` and `tail` print.

use std::time::Duration;

/// Print the numbers every tool reports: average record size, elapsed
/// time, events/s, MiB/s, and the server's peak RSS and CPU when known.
pub fn report(events: usize, bytes: u64, elapsed: Duration, rss: Option<f64>, cpu: Option<f64>) {
    let secs = elapsed.as_secs_f64();
    println!("avg record:   {:.0} bytes", bytes as f64 / events as f64);
    println!("elapsed:      {secs:.3} s");
    println!("events/s:     {:.0}", events as f64 / secs);
    println!(
        "MiB/s:        {:.1}",
        bytes as f64 / secs / (1024.0 * 1024.0)
    );
    match rss {
        Some(mib) => println!("server peak RSS: {mib:.1} MiB"),
        None => println!("server peak RSS: unknown (no /proc)"),
    }
    if let Some(cpu) = cpu {
        println!(
            "server CPU:   {cpu:.2} s ({:.2} µs per event)",
            cpu * 1e6 / events as f64
        );
    }
}
