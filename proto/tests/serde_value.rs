//! `to_value` / `from_value` with application structs, `Value` fields keeping their types,
//! and the `value!` / `kw!` macros.

use std::collections::{BTreeMap, HashMap};

use atomsync_proto::serde_value::SerdeError;
use atomsync_proto::{Inst, Value, from_value, kw, to_value, value};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    city: String,
    zip: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Status {
    Open,
    Snoozed(u32),
    Moved { to: String },
    Pair(i8, char),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    text: String,
    count: i64,
    big: u64,
    ratio: f64,
    note: Option<String>,
    missing: Option<String>,
    steps: Vec<i32>,
    counts: HashMap<String, u8>,
    by_number: BTreeMap<i64, bool>,
    address: Address,
    status: Vec<Status>,
    tags: Value,
    unit: (),
}

fn item() -> Item {
    Item {
        text: "Buy milk".into(),
        count: -3,
        big: u64::MAX,
        ratio: 0.5,
        note: Some("soon".into()),
        missing: None,
        steps: vec![1, 2, 3],
        counts: HashMap::from([("a".into(), 1), ("b".into(), 255)]),
        by_number: BTreeMap::from([(-1, true), (2, false)]),
        address: Address {
            city: "Oslo".into(),
            zip: None,
        },
        status: vec![
            Status::Open,
            Status::Snoozed(9),
            Status::Moved { to: "x".into() },
            Status::Pair(-1, 'é'),
        ],
        tags: value!({"kinds": #{kw!("home"), kw!("shop/food")}, "at": Inst { secs: 1, nanos: 5 },
                      "id": Value::Uuid([9; 16]), "raw": Value::Bytes(vec![0, 255])}),
        unit: (),
    }
}

#[test]
fn struct_round_trips_with_types_intact() {
    let original = item();
    let value = to_value(&original).unwrap();
    assert_eq!(value.get("big"), Some(&Value::UInt(u64::MAX)));
    assert_eq!(value.get("count"), Some(&Value::Int(-3)));
    assert_eq!(value.get("missing"), Some(&Value::Nil));
    assert_eq!(value.get("unit"), Some(&Value::Nil));
    assert_eq!(
        value.get("address"),
        Some(&value!({"city": "Oslo", "zip": null}))
    );
    assert_eq!(
        value.get("status"),
        Some(&value!(["Open", {"Snoozed": 9}, {"Moved": {"to": "x"}}, {"Pair": [-1, "é"]}]))
    );
    assert_eq!(value.get("by_number"), Some(&value!({-1: true, 2: false})));
    // The `Value` field keeps its keyword set, instant, UUID and bytes.
    assert_eq!(value.get("tags"), Some(&original.tags));
    let back: Item = from_value(&value).unwrap();
    assert_eq!(back, original);
}

#[test]
fn typed_values_read_as_plain_types() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct Plain {
        kinds: Vec<String>,
        at: String,
        id: String,
        uuid: uuid::Uuid,
        kw: String,
    }
    let value = value!({
        "kinds": #{kw!("home")},
        "at": Inst { secs: 0, nanos: 120_000_000 },
        "id": Value::Uuid([0x55; 16]),
        "uuid": Value::Uuid([0x55; 16]),
        "kw": kw!("a/b"),
    });
    let plain: Plain = from_value(&value).unwrap();
    assert_eq!(plain.kinds, ["home"]);
    assert_eq!(plain.at, "1970-01-01T00:00:00.12Z");
    assert_eq!(plain.id, "55555555-5555-5555-5555-555555555555");
    assert_eq!(plain.uuid, uuid::Uuid::from_bytes([0x55; 16]));
    assert_eq!(plain.kw, "a/b");
}

#[test]
fn value_through_other_formats_loses_only_the_extra_types() {
    let value =
        value!({"n": 1, "big": u64::MAX, "list": [true, null, 1.5], "kw": kw!("x"), "set": #{1}});
    let text = serde_json::to_string(&value).unwrap();
    assert_eq!(
        text,
        r#"{"n":1,"big":18446744073709551615,"list":[true,null,1.5],"kw":"x","set":[1]}"#
    );
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        back,
        value!({"n": 1, "big": u64::MAX, "list": [true, null, 1.5], "kw": "x", "set": [1]})
    );
    let packed = rmp_serde::to_vec(&value!([1, "a", {"b": null}])).unwrap();
    let back: Value = rmp_serde::from_slice(&packed).unwrap();
    assert_eq!(back, value!([1, "a", {"b": null}]));
}

#[test]
fn a_value_converts_to_itself() {
    let value = value!({"s": #{kw!("a"), [1, #{2}]}, 7: Inst { secs: -5, nanos: 1 }, "u": Value::Uuid([1; 16])});
    assert_eq!(to_value(&value).unwrap(), value);
    assert_eq!(from_value::<Value>(&value).unwrap(), value);
}

#[test]
fn errors_say_what() {
    assert!(matches!(from_value::<u8>(&value!(300)), Err(SerdeError(_))));
    assert!(
        from_value::<Address>(&value!({"zip": 1}))
            .unwrap_err()
            .0
            .contains("city")
    );
    assert!(from_value::<Status>(&value!({"A": 1, "B": 2})).is_err());
    assert!(to_value(&u128::MAX).is_err());
    assert_eq!(
        to_value(&(u128::from(u64::MAX))).unwrap(),
        Value::UInt(u64::MAX)
    );
    assert_eq!(to_value(&-5i128).unwrap(), Value::Int(-5));
}

#[test]
fn macro_forms() {
    let key = "dynamic";
    let n = 4;
    let built = value!({
        key: n,
        (1 + 1): [#{}, [], {}],
        kw!("k"): #{[1, #{2}], {"in": #{3}}},
        "neg": -1,
        "expr": n * 2,
    });
    let expected = Value::Map(vec![
        (Value::from("dynamic"), Value::Int(4)),
        (
            Value::Int(2),
            Value::List(vec![
                Value::Set(vec![]),
                Value::List(vec![]),
                Value::Map(vec![]),
            ]),
        ),
        (
            kw!("k"),
            Value::Set(vec![
                Value::List(vec![Value::Int(1), Value::Set(vec![Value::Int(2)])]),
                Value::Map(vec![(Value::from("in"), Value::Set(vec![Value::Int(3)]))]),
            ]),
        ),
        (Value::from("neg"), Value::Int(-1)),
        (Value::from("expr"), Value::Int(8)),
    ]);
    assert_eq!(built, expected);
    assert_eq!(value!(true), Value::Bool(true));
    assert_eq!(value!("s"), Value::from("s"));
    assert_eq!(value!(Some(1)), Value::Int(1));
    assert_eq!(
        value!([null, false,]),
        Value::List(vec![Value::Nil, Value::Bool(false)])
    );
}
