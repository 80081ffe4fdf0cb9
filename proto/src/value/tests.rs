//! Equality, validity and the constructors, tested directly.

use super::*;

#[test]
fn integers_have_one_representation() {
    assert_eq!(Value::from(5u64), Value::Int(5));
    assert_eq!(Value::from(i64::MAX as u64), Value::Int(i64::MAX));
    assert_eq!(Value::from(u64::MAX), Value::UInt(u64::MAX));
    assert_eq!(Value::int(-1), Some(Value::Int(-1)));
    assert_eq!(
        Value::int(i128::from(u64::MAX)),
        Some(Value::UInt(u64::MAX))
    );
    assert_eq!(Value::int(i128::from(u64::MAX) + 1), None);
    assert_eq!(Value::int(i128::from(i64::MIN) - 1), None);
    assert_ne!(Value::Int(1), Value::Float(1.0));
    assert_eq!(Value::from(None::<i32>), Value::Nil);
    assert_eq!(Value::from(Some("a")), Value::Str("a".into()));
}

#[test]
fn equality_of_floats_sets_and_maps() {
    assert_eq!(Value::Float(f64::NAN), Value::Float(-f64::NAN));
    assert_eq!(Value::Float(0.0), Value::Float(-0.0));
    assert_ne!(Value::Float(f64::NAN), Value::Float(1.0));
    assert_eq!(Value::set([1, 2, 2]), Value::set([2, 1, 2]));
    assert_ne!(Value::set([1, 2, 2]), Value::set([1, 1, 2]));
    assert_ne!(Value::set([1, 2]), Value::set([1, 2, 3]));
    assert_ne!(Value::set([1]), Value::list([1]));
    assert_eq!(
        Value::map([("a", 1), ("b", 2)]),
        Value::map([("b", 2), ("a", 1)])
    );
    assert_ne!(
        Value::map([("a", 1), ("b", 2)]),
        Value::map([("a", 2), ("b", 1)])
    );
    assert_eq!(
        Value::set([Value::set([1, 2]), Value::Float(f64::NAN)]),
        Value::set([Value::Float(f64::NAN), Value::set([2, 1])])
    );
}

#[test]
fn depth_counts_containers_on_the_deepest_path() {
    assert_eq!(Value::Int(1).depth(), 0);
    assert_eq!(Value::list::<Value>([]).depth(), 1);
    assert_eq!(Value::list([Value::list([1])]).depth(), 2);
    assert_eq!(
        Value::map([(Value::set([Value::list([1])]), Value::Nil)]).depth(),
        3
    );
    let deep = Value::list([Value::list([Value::list([1])])]);
    assert_eq!(deep.check(3), Ok(()));
    assert_eq!(
        deep.check(2),
        Err(CodecError::TooDeep {
            path: "[0][0]".into(),
            max_depth: 2
        })
    );
}

#[test]
fn check_finds_invalid_keywords_and_instants() {
    let bad_kw = Value::map([("tags", Value::set([Value::kw("ok"), Value::kw("no way")]))]);
    assert_eq!(
        bad_kw.check(64).map_err(|e| e.path().to_owned()),
        Err("tags[1]".into())
    );
    let bad_inst = Value::list([Value::Inst(Inst {
        secs: 0,
        nanos: 1_000_000_000,
    })]);
    assert!(bad_inst.check(64).is_err());
    for name in ["", " ", "a b", "/a", "a/", "/", "a\tb"] {
        assert!(Value::try_kw(name).is_err(), "{name:?}");
    }
    for name in ["a", "ns/name", "a/b/c", "é", "$x"] {
        assert_eq!(Value::try_kw(name), Ok(Value::Kw(name.into())));
    }
}

#[test]
fn accessors() {
    let v = Value::map([("n", Value::Int(-3)), ("s", Value::from("x"))]);
    assert_eq!(v.get("n").and_then(Value::as_i64), Some(-3));
    assert_eq!(v.get("n").and_then(Value::as_u64), None);
    assert_eq!(v.get("s").and_then(Value::as_str), Some("x"));
    assert_eq!(v.get("missing"), None);
    assert_eq!(Value::UInt(u64::MAX).as_u64(), Some(u64::MAX));
    assert_eq!(Value::kw("k").as_kw(), Some("k"));
    assert_eq!(Value::kw("k").type_name(), "keyword");
    assert!(Value::Nil.is_nil());
    assert_eq!(Value::set([1]).to_string(), r#"{"$set":[1]}"#);
}
