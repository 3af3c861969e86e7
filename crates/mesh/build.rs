//! Generates the `collector` protobuf types and gRPC stubs. `protox` parses the
//! `.proto` in pure Rust, so building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/collector.proto");
    let descriptors = protox::compile(["collector.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The generated `connect(addr)` helper would clash with the `Connect` RPC.
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
