//! Times the client's and the server's message decoding, for before/after comparisons:
//! `PullResponse::decode` of 10,000 documents of about 100 bytes (a catch-up page), and
//! `UncheckedPush::decode` + `validate` of 100 changes (a batched push), in both encodings.
//!
//! Run: `cargo run --release -p atomsync-proto --example decode_bench`

use std::hint::black_box;
use std::time::Instant;

use atomsync_proto::wire::{
    Change, Doc, Encoding, Limits, Op, PullResponse, PushRequest, UncheckedPush,
};
use atomsync_proto::{Packed, Value};

/// A document value of about 100 bytes in MessagePack: a small map of mixed scalars.
fn sample_value(index: u64) -> Value {
    Value::Map(vec![
        ("title".into(), format!("document number {index:08}").into()),
        ("count".into(), index.into()),
        ("ratio".into(), Value::Float(index as f64 / 7.0)),
        ("done".into(), Value::Bool(index.is_multiple_of(2))),
        (
            "tags".into(),
            Value::List(vec!["alpha".into(), "beta".into(), "gamma".into()]),
        ),
        ("note".into(), "some text to reach a hundred bytes".into()),
    ])
}

/// Runs `work` `rounds` times and returns the best time per round in milliseconds.
fn best_ms(rounds: usize, mut work: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let docs: Vec<Doc> = (1..=10_000)
        .map(|seq| Doc {
            key: format!("doc-{seq}"),
            version: 1,
            seq,
            value: Some(Packed::from_value(&sample_value(seq))),
        })
        .collect();
    let value_bytes = docs
        .iter()
        .filter_map(|doc| doc.value.as_ref().map(Packed::len))
        .sum::<usize>()
        / docs.len();
    let pull = PullResponse {
        group: "bench".into(),
        epoch: "e".into(),
        changes: docs,
        seq: 10_000,
        more: true,
        reset: false,
        floor: 0,
    };
    let push = PushRequest {
        group: "bench".into(),
        changes: (0..100)
            .map(|index| Change {
                key: format!("doc-{index}"),
                base: 0,
                op: Op::Set(Packed::from_value(&sample_value(index))),
            })
            .collect(),
    };
    let limits = Limits::default();
    println!("value size: {value_bytes} bytes");
    for encoding in [Encoding::MsgPack, Encoding::Json] {
        let body = pull.encode(encoding);
        let ms = best_ms(20, || {
            let decoded = PullResponse::decode(black_box(&body), encoding);
            assert!(matches!(decoded, Ok(ref page) if page.changes.len() == 10_000));
        });
        println!("{encoding:?} PullResponse::decode, 10,000 docs: {ms:.2} ms");

        let body = push.encode(encoding);
        let ms = best_ms(200, || {
            let checked = UncheckedPush::decode(black_box(&body), encoding, &limits)
                .and_then(|push| push.validate(&limits));
            assert!(matches!(checked, Ok(ref request) if request.changes.len() == 100));
        });
        println!(
            "{encoding:?} UncheckedPush::decode + validate, 100 changes: {:.1} us",
            ms * 1e3
        );
    }
}
