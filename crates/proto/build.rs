//! Generates the replication service from `proto/` with a protoc binary vendored as a crate, so
//! building EdgeKV needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build finds protoc through PROTOC.
    std::env::set_var("PROTOC", protoc);
    let proto_dir = "../../proto";
    let file = "../../proto/edgekv/replication/v1/replication.proto";
    println!("cargo:rerun-if-changed={file}");
    tonic_prost_build::configure()
        .bytes(".")
        // prost's codec but for a request that does not decode: see src/codec.rs.
        .codec_path("crate::codec::ReplicationCodec")
        .compile_protos(&[file], &[proto_dir])?;
    Ok(())
}
