//! What a client reads: the `server_message` fuzz target. A client decodes whatever
//! arrives from the network (a proxy, a server of another version, a hostile one); the
//! decoders may refuse it, but never panic, and what they accept is exactly what the
//! server's encoders write for it.

use super::codec::accepted;
use crate::wire::{Doc, PullResponse, PushResponse, PushResult, RESPONSE_MAX_DEPTH, ServerFrame};
use crate::{Encoding, ErrorCode, WireError};

/// The `server_message` target. The first byte chooses the encoding (bit 0) and the
/// message (bits 1 and 2: a pull response, a push response, a server frame, an error body);
/// the rest is the message. What decodes re-encodes, in either encoding, to a message that
/// decodes equal, and every document value in it is canonical and valid.
pub fn server_message(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let encoding = if selector & 1 == 0 {
        Encoding::MsgPack
    } else {
        Encoding::Json
    };
    match selector >> 1 & 3 {
        0 => check(PullResponse::decode(bytes, encoding), |page| {
            page.changes.iter().for_each(doc);
            both(|encoding| PullResponse::decode(&page.encode(encoding), encoding))
        }),
        1 => check(PushResponse::decode(bytes, encoding), |response| {
            push_response(response);
            both(|encoding| PushResponse::decode(&response.encode(encoding), encoding))
        }),
        2 => check(with_values(bytes, encoding), |frame| {
            match frame {
                ServerFrame::Changes { changes, .. } => changes.iter().for_each(doc),
                ServerFrame::Pushed { response, .. } => push_response(response),
                _ => {}
            }
            both(|encoding| ServerFrame::decode(&frame.encode(encoding), encoding))
        }),
        _ => check(crate::wire::decode_error(bytes, encoding), |error| {
            both(|encoding| {
                crate::wire::decode_error(&crate::wire::encode_error(error, encoding), encoding)
            })
        }),
    }
}

/// [`ServerFrame::decode`], checked against the native client's own reading,
/// [`ServerFrame::decode_with_values`] (each value read once into its bytes and its
/// `Value`): both accept the same frames, equal, or refuse with the same error, and each
/// value given beside a `changes` frame is the one its document's bytes hold.
fn with_values(bytes: &[u8], encoding: Encoding) -> Result<ServerFrame, WireError> {
    let decoded = ServerFrame::decode(bytes, encoding);
    let kept = ServerFrame::decode_with_values(bytes, encoding);
    match (&decoded, kept) {
        (Ok(frame), Ok((again, values))) => {
            assert_eq!(
                &again, frame,
                "decode_with_values reads the frame decode reads"
            );
            let expected: Vec<_> = match frame {
                ServerFrame::Changes { changes, .. } => changes
                    .iter()
                    .map(|doc| doc.value.as_ref().map(|packed| packed.to_value()))
                    .collect(),
                _ => Vec::new(),
            };
            assert_eq!(values, expected, "the values beside a frame's documents");
        }
        (Err(error), Err(again)) => assert_eq!(&again, error, "both refuse alike"),
        (decoded, kept) => panic!("decode gave {decoded:?}, decode_with_values {kept:?}"),
    }
    decoded
}

/// A refusal is a 400 that names a place; an accepted message comes back equal from
/// `round_trip`, which re-encodes and decodes it in each encoding.
fn check<T: PartialEq + std::fmt::Debug>(
    decoded: Result<T, WireError>,
    round_trip: impl Fn(&T) -> [Result<T, WireError>; 2],
) {
    match decoded {
        Err(error) => {
            assert_eq!(error.code, ErrorCode::BadRequest, "{}", error.message);
            assert!(error.message.contains(": "), "{:?}", error.message);
        }
        Ok(message) => {
            for again in round_trip(&message) {
                assert_eq!(again.as_ref(), Ok(&message), "a client message round trip");
            }
        }
    }
}

fn both<T>(decode: impl Fn(Encoding) -> Result<T, WireError>) -> [Result<T, WireError>; 2] {
    [decode(Encoding::MsgPack), decode(Encoding::Json)]
}

fn push_response(response: &PushResponse) {
    for result in &response.results {
        if let PushResult::Conflict {
            current: Some(current),
            ..
        } = result
        {
            doc(current);
        }
    }
}

/// A document's value is held as its canonical bytes, of a valid value.
fn doc(doc: &Doc) {
    if let Some(packed) = &doc.value {
        let (canonical, _) = accepted(&packed.to_value(), RESPONSE_MAX_DEPTH);
        assert_eq!(packed.as_bytes(), canonical.as_slice(), "a document value");
    }
}
