//! Property tests over generated values (bounded size and depth): both codecs round-trip
//! every value, the two encodings carry exactly the same information, and no byte string
//! or text makes a decoder panic.

use atomsync_proto::value::is_valid_keyword;
use atomsync_proto::{Inst, Packed, Value, json, msgpack};
use proptest::prelude::*;

use super::MAX_DEPTH;

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(f64::MAX),
    ]
}

fn inst() -> impl Strategy<Value = Inst> {
    let secs = prop_oneof![
        Inst::MIN_SECS..=Inst::MAX_SECS,
        0i64..(1 << 34),
        Just(Inst::MIN_SECS),
        Just(Inst::MAX_SECS),
        Just(0),
        Just((1 << 32) - 1),
        Just(1 << 32),
        Just((1 << 34) - 1),
        Just(1 << 34),
    ];
    let nanos = prop_oneof![Just(0u32), 0u32..1_000_000_000, Just(999_999_999)];
    (secs, nanos).prop_map(|(secs, nanos)| Inst { secs, nanos })
}

fn keyword() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}(/[a-z][a-z0-9.]{0,8})?",
        "[^\\s/][^\\s]{0,6}"
    ]
    .prop_filter("valid keyword", |name| is_valid_keyword(name))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z$]{0,4}",
        "\\$[a-z]{0,3}",
        "[\"\\\\\\x00-\\x1f/]{0,4}"
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::UInt),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), -200i64..200].prop_map(Value::Int),
        float().prop_map(Value::Float),
        text().prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Value::Bytes),
        inst().prop_map(Value::Inst),
        any::<[u8; 16]>().prop_map(Value::Uuid),
        keyword().prop_map(Value::Kw),
    ]
}

/// `members` without those whose `key` encodes as an earlier one's: a valid set or map
/// (PROTOCOL.md section 2).
fn distinct<T>(members: Vec<T>, key: impl Fn(&T) -> &Value) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    members
        .into_iter()
        .filter(|member| seen.insert(msgpack::encode(key(member))))
        .collect()
}

/// Any value: at most 4 levels of containers, at most 8 items in each.
pub fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            prop::collection::vec(inner.clone(), 0..8)
                .prop_map(|items| Value::Set(distinct(items, |item| item))),
            prop::collection::vec((inner.clone(), inner.clone()), 0..6)
                .prop_map(|pairs| Value::Map(distinct(pairs, |(key, _)| key))),
            // String-keyed maps, sometimes with `$` names (a repeated name is dropped).
            prop::collection::vec((text(), inner), 0..6).prop_map(|pairs| {
                let pairs = pairs.into_iter().map(|(k, v)| (Value::Str(k), v)).collect();
                Value::Map(distinct(pairs, |(key, _)| key))
            }),
        ]
    })
}

/// Whether two values are the same down to the bits of every float (`==` lets
/// `-0.0 == 0.0` and ignores set and map order; a round trip must keep both).
fn identical(a: &Value, b: &Value) -> bool {
    msgpack::encode(a) == msgpack::encode(b) && a == b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn msgpack_round_trips(v in value()) {
        let bytes = msgpack::encode(&v);
        let back = msgpack::decode(&bytes, MAX_DEPTH).unwrap();
        prop_assert!(identical(&back, &v), "{v:?} came back as {back:?}");
        prop_assert_eq!(msgpack::validate(&bytes, MAX_DEPTH), Ok(true));
        prop_assert_eq!(msgpack::decode_prefix(&bytes, MAX_DEPTH).map(|(_, used)| used), Ok(bytes.len()));
        prop_assert_eq!(v.check(MAX_DEPTH), Ok(()));
        prop_assert!(v.depth() <= 5);
    }

    #[test]
    fn json_round_trips(v in value()) {
        let text = json::encode(&v);
        let back = json::decode(text.as_bytes(), MAX_DEPTH).unwrap();
        prop_assert!(identical(&back, &v), "{text} came back as {back:?}");
        prop_assert_eq!(v.to_string(), text);
    }

    /// msgpack → JSON → msgpack gives the same bytes, and the transcoder writes the same
    /// text as encoding the decoded value.
    #[test]
    fn msgpack_through_json_is_identity(v in value()) {
        let bytes = msgpack::encode(&v);
        let text = json::encode(&msgpack::decode(&bytes, MAX_DEPTH).unwrap());
        let mut transcoded = Vec::new();
        json::transcode_msgpack(&bytes, MAX_DEPTH, &mut transcoded).unwrap();
        prop_assert_eq!(&transcoded, text.as_bytes());
        let again = msgpack::encode(&json::decode(text.as_bytes(), MAX_DEPTH).unwrap());
        prop_assert_eq!(again, bytes);
    }

    /// JSON → msgpack → JSON gives the same text.
    #[test]
    fn json_through_msgpack_is_identity(v in value()) {
        let text = json::encode(&v);
        let bytes = msgpack::encode(&json::decode(text.as_bytes(), MAX_DEPTH).unwrap());
        let again = json::encode(&msgpack::decode(&bytes, MAX_DEPTH).unwrap());
        prop_assert_eq!(again, text);
    }

    #[test]
    fn packed_holds_the_canonical_bytes(v in value()) {
        let packed = Packed::from_value(&v);
        let bytes = msgpack::encode(&v);
        prop_assert_eq!(packed.as_bytes(), bytes.as_slice());
        prop_assert_eq!(Packed::from_bytes(packed.as_bytes(), MAX_DEPTH), Ok(packed.clone()));
        prop_assert!(identical(&packed.to_value(), &v));
        prop_assert_eq!(packed.to_json(), json::encode(&v));
    }

    /// Random bytes never panic a reader, and the three MessagePack readers agree.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let decoded = msgpack::decode(&bytes, 8);
        prop_assert_eq!(msgpack::validate(&bytes, 8).err(), decoded.clone().err());
        prop_assert_eq!(json::transcode_msgpack(&bytes, 8, &mut Vec::new()).err(), decoded.clone().err());
        if let Ok(v) = decoded {
            let packed = Packed::from_bytes(&bytes, 8).unwrap();
            prop_assert!(identical(&packed.to_value(), &v));
        }
    }

    /// Damaged encodings of real values: cut short, one byte changed.
    #[test]
    fn damaged_encodings_never_panic(v in value(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let bytes = msgpack::encode(&v);
        let text = json::encode(&v).into_bytes();
        for encoded in [bytes, text] {
            let short = &encoded[..cut.index(encoded.len() + 1).min(encoded.len())];
            let _ = msgpack::decode(short, MAX_DEPTH);
            let _ = json::decode(short, MAX_DEPTH);
            let mut changed = encoded.clone();
            if !changed.is_empty() {
                let at = flip.0.index(changed.len());
                changed[at] ^= flip.1 | 1;
            }
            let decoded = msgpack::decode(&changed, MAX_DEPTH);
            prop_assert_eq!(msgpack::validate(&changed, MAX_DEPTH).err(), decoded.err());
            let _ = json::decode(&changed, MAX_DEPTH);
        }
    }

    #[test]
    fn random_text_never_panics(text in prop_oneof![any::<String>(), "[\\[\\]{}\",:0-9a-z$\\\\. eE+-]{0,48}"]) {
        if let Ok(v) = json::decode(text.as_bytes(), 8) {
            let again = json::encode(&v);
            prop_assert!(identical(&json::decode(again.as_bytes(), 8).unwrap(), &v));
        }
    }

    /// Equality ignores the order of set items and map entries, not list items.
    #[test]
    fn equality_ignores_set_and_map_order(items in prop::collection::vec(leaf(), 0..8)) {
        let reversed: Vec<Value> = items.iter().rev().cloned().collect();
        prop_assert_eq!(Value::Set(items.clone()), Value::Set(reversed.clone()));
        let pairs = |items: &[Value]| Value::Map(items.iter().cloned().zip(items.iter().cloned()).collect());
        prop_assert_eq!(pairs(&items), pairs(&reversed));
        if items.len() > 1 && items.first() != items.last() {
            prop_assert_ne!(Value::List(items), Value::List(reversed));
        }
    }
}
