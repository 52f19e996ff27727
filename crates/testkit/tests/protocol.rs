//! The replication service facing a peer that breaks the rules: no secret, malformed messages.
//! Each is refused with a gRPC error, counted, and leaves the node serving.

use edgekv_proto::pb;
use edgekv_proto::pb::replication_client::ReplicationClient;
use edgekv_testkit::TestCluster;
use tonic::Code;

fn rejected(cluster: &TestCluster, region: &str, reason: &str) -> u64 {
    let prefix = format!("edgekv_replication_rejected_total{{reason=\"{reason}\"}} ");
    cluster
        .region(region)
        .registry
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

async fn client(
    cluster: &TestCluster,
    region: &str,
) -> ReplicationClient<tonic::transport::Channel> {
    let url = edgekv_replication::grpc_url(cluster.region(region).grpc_addr);
    ReplicationClient::connect(url).await.expect("connect")
}

fn with_secret<T>(message: T, secret: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {secret}").parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_cluster_secret_is_refused_and_counted() {
    let cluster = TestCluster::builder().start().await;
    let mut client = client(&cluster, "wnam").await;
    let digest = pb::DigestRequest { sender: "enam".into(), ..Default::default() };
    let err = client.digest(digest.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client.digest(with_secret(digest.clone(), "wrong")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(rejected(&cluster, "wnam", "auth"), 2);
    let ok = client.digest(with_secret(digest, edgekv_node::config::DEV_CLUSTER_SECRET)).await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_refused_without_harm() {
    let cluster = TestCluster::builder().start().await;
    let mut client = client(&cluster, "wnam").await;
    let secret = edgekv_node::config::DEV_CLUSTER_SECRET;
    let key_write = |key: &str, namespace: &str, origin: &str| pb::Write {
        kind: Some(pb::write::Kind::Key(pb::KeyWrite {
            account: "acct".into(),
            namespace: namespace.into(),
            key: key.into(),
            value: Some(b"evil".to_vec().into()),
            metadata: None,
            expiration: None,
            version: Some(pb::Version { timestamp: 1 << 40, origin: origin.into() }),
        })),
    };
    let ns = cluster.namespace.to_string();
    for (write, what) in [
        (key_write("", &ns, "enam"), "empty key"),
        (key_write(&"k".repeat(513), &ns, "enam"), "long key"),
        (key_write("k", "not-a-namespace", "enam"), "bad namespace"),
        (key_write("k", &ns, "NOT A REGION"), "bad origin"),
        (pb::Write { kind: None }, "empty write"),
    ] {
        let push = pb::PushRequest {
            sender: "enam".into(),
            writes: vec![write],
            replicated_through: 0,
            born: 0,
        };
        let err = client.push(with_secret(push, secret)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}");
    }
    let push = pb::PushRequest {
        sender: "bad sender!".into(),
        writes: Vec::new(),
        replicated_through: 0,
        born: 0,
    };
    assert_eq!(
        client.push(with_secret(push, secret)).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let reconcile = pb::ReconcileRequest {
        sender: "enam".into(),
        leaves: vec![70_000],
        items: Vec::new(),
        born: 0,
    };
    assert_eq!(
        client.reconcile(with_secret(reconcile, secret)).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(rejected(&cluster, "wnam", "malformed"), 7);
    assert_eq!(cluster.get("wnam", "k"), None, "nothing of it was stored");
    // The node still replicates.
    cluster.must_put("enam", "after", "ok");
    cluster.wait_for_value("wnam", "after", Some("ok"), std::time::Duration::from_secs(10)).await;
}

/// A value over the 25 MiB limit, and a message over the 64 MiB frame limit, are refused; the
/// node keeps serving and stores nothing of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_without_harm() {
    let cluster = TestCluster::builder().start().await;
    let mut client = client(&cluster, "wnam").await.max_encoding_message_size(usize::MAX);
    let secret = edgekv_node::config::DEV_CLUSTER_SECRET;
    let write = |len: usize| pb::Write {
        kind: Some(pb::write::Kind::Key(pb::KeyWrite {
            account: "acct".into(),
            namespace: cluster.namespace.to_string(),
            key: "big".into(),
            value: Some(vec![0u8; len].into()),
            metadata: None,
            expiration: None,
            version: Some(pb::Version { timestamp: 1 << 40, origin: "enam".into() }),
        })),
    };
    for (len, code) in [(30 << 20, Code::InvalidArgument), (65 << 20, Code::OutOfRange)] {
        let push = pb::PushRequest {
            sender: "enam".into(),
            writes: vec![write(len)],
            replicated_through: 0,
            born: 0,
        };
        let err = client.push(with_secret(push, secret)).await.unwrap_err();
        assert_eq!(err.code(), code, "{len} bytes: {err}");
    }
    assert_eq!(cluster.get("wnam", "big"), None);
    cluster.must_put("enam", "after", "ok");
    cluster.wait_for_value("wnam", "after", Some("ok"), std::time::Duration::from_secs(10)).await;
}

/// A codec that sends and receives raw bytes, so a test can put anything on the wire as the
/// message of a call.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = bytes::Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: bytes::Bytes,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<bytes::Bytes>, tonic::Status> {
        let len = bytes::Buf::remaining(buf);
        Ok(Some(bytes::Buf::copy_to_bytes(buf, len)))
    }
}

/// Calls `rpc` of the replication service with `message` as the request's bytes.
async fn raw_call(
    cluster: &TestCluster,
    region: &str,
    rpc: &str,
    message: &'static [u8],
) -> Result<bytes::Bytes, tonic::Status> {
    let url = edgekv_replication::grpc_url(cluster.region(region).grpc_addr);
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("gRPC url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("channel ready");
    let path = format!("/edgekv.replication.v1.Replication/{rpc}").parse().expect("path");
    let request =
        with_secret(bytes::Bytes::from_static(message), edgekv_node::config::DEV_CLUSTER_SECRET);
    grpc.unary(request, path, RawCodec).await.map(tonic::Response::into_inner)
}

/// Requests that are not protobuf messages at all are the caller's fault: INVALID_ARGUMENT,
/// counted as malformed, for every rpc, and the node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_arguments_and_counted() {
    let cluster = TestCluster::builder().start().await;
    // A field tag that is a varint of more than ten bytes.
    let garbage: &'static [u8] = &[0xff; 11];
    // Field 1 (sender) announces five bytes and carries two.
    let truncated: &'static [u8] = b"\x0a\x05en";
    let calls =
        [("Push", garbage), ("Push", truncated), ("Digest", garbage), ("Reconcile", garbage)];
    for (n, (rpc, message)) in calls.into_iter().enumerate() {
        let status = raw_call(&cluster, "wnam", rpc, message).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{rpc} {message:?}: {status}");
        assert_eq!(rejected(&cluster, "wnam", "malformed"), n as u64 + 1, "{rpc} {message:?}");
    }
    // A valid message sent the same way, `DigestRequest { sender: "enam" }`, is served and
    // not counted.
    let reply = raw_call(&cluster, "wnam", "Digest", b"\x0a\x04enam").await;
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(rejected(&cluster, "wnam", "malformed"), calls.len() as u64);
    cluster.must_put("enam", "after", "ok");
    cluster.wait_for_value("wnam", "after", Some("ok"), std::time::Duration::from_secs(10)).await;
}
