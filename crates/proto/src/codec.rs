//! The codec of the replication service: prost's, except for what a server answers to a request
//! that is not a valid protobuf message.
//!
//! tonic's prost codec turns every decode failure into INTERNAL, the code gRPC prescribes for a
//! client that cannot parse a response. A request that does not decode is the caller's fault,
//! though, and the service answers every other malformed request with INVALID_ARGUMENT; so this
//! codec does the same, and marks the status with a [`MalformedRequest`] source, which lets the
//! server count the refusal (the codec runs before any handler and cannot reach the metrics).
//! Encoding, buffers and responses that do not decode are prost's, unchanged, as is the wire
//! format. `build.rs` names this codec for the generated client and server.

use std::sync::Arc;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::pb;

/// Which end of a call decodes a message: the server decodes requests, the client responses.
pub trait Direction {
    /// Whether the message is a request, so a failure to decode it is the caller's fault.
    const IS_REQUEST: bool;
}

macro_rules! direction {
    ($is_request:literal: $($message:ty),+) => {
        $(impl Direction for $message {
            const IS_REQUEST: bool = $is_request;
        })+
    };
}

direction!(true: pb::PushRequest, pb::DigestRequest, pb::ReconcileRequest, pb::IdentifyRequest);
direction!(false: pb::PushResponse, pb::DigestResponse, pb::ReconcileResponse, pb::IdentifyResponse);

/// Why a request was refused before any handler saw it: it is not a valid protobuf message.
/// Carried as the source of the INVALID_ARGUMENT status; see [`is_malformed_request`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed request: {0}")]
pub struct MalformedRequest(String);

/// Whether `status` is the refusal of a request that did not decode.
pub fn is_malformed_request(status: &Status) -> bool {
    std::error::Error::source(status).is_some_and(|source| source.is::<MalformedRequest>())
}

/// prost's codec with [`ReplicationDecoder`] in place of prost's decoder.
#[derive(Debug, Clone)]
pub struct ReplicationCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for ReplicationCodec<T, U> {
    fn default() -> Self {
        ReplicationCodec(ProstCodec::default())
    }
}

impl<T, U> Codec for ReplicationCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Direction + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ReplicationDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ReplicationDecoder(self.0.decoder())
    }
}

/// prost's decoder, answering a request that does not decode with INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct ReplicationDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default + Direction> Decoder for ReplicationDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| if U::IS_REQUEST { refuse(&status) } else { status })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The INVALID_ARGUMENT status for a request prost could not decode, with prost's reason.
fn refuse(decode_failure: &Status) -> Status {
    let cause = MalformedRequest(decode_failure.message().to_owned());
    let mut status = Status::invalid_argument(cause.to_string());
    status.set_source(Arc::new(cause));
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_that_do_not_decode_are_marked_malformed() {
        let failure = Status::internal("failed to decode Protobuf message: invalid wire type");
        let refused = refuse(&failure);
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(refused.message().contains("invalid wire type"), "{}", refused.message());
        assert!(is_malformed_request(&refused));
        assert!(!is_malformed_request(&failure));
        assert!(!is_malformed_request(&Status::invalid_argument("invalid sender region")));
    }
}
