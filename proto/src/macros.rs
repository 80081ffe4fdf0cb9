//! The `value!` and `kw!` macros: [`Value`](crate::Value) literals written the way the
//! tagged JSON reads, with sets as `#{..}` and keywords as `kw!("ns/name")`.
//!
//! `value!` is a token muncher in the manner of serde_json's `json!`: it walks its input
//! one token tree at a time so that `null`, `[..]`, `{..}` and `#{..}` nest anywhere, and
//! anything else is a Rust expression turned into a value with `Value::from`.

/// Builds a [`Value`](crate::Value).
///
/// - `null`, `true`, `false`;
/// - lists `[..]`, sets `#{..}`, maps `{key: value, ..}` whose keys are any expression
///   (converted with `Value::from`, so `7: ".."` is an integer key);
/// - any other Rust expression, converted with `Value::from`.
///
/// ```
/// use atomsync_proto::{Value, kw, value};
///
/// let count = 3;
/// let item = value!({
///     "text": "Buy milk",
///     "n": count,
///     7: "int key",
///     "tags": #{kw!("home"), kw!("shop/food")},
///     "steps": [1, "a", [2], null],
///     "done": false,
/// });
/// assert_eq!(item.get("n"), Some(&Value::Int(3)));
/// assert_eq!(item.get("tags"), Some(&Value::Set(vec![Value::kw("home"), Value::kw("shop/food")])));
/// assert_eq!(value!([1, "a", [2]]), Value::List(vec![1.into(), "a".into(), Value::List(vec![2.into()])]));
/// assert_eq!(value!(null), Value::Nil);
/// assert_eq!(value!(#{1, 2}), Value::Set(vec![1.into(), 2.into()]));
/// ```
#[macro_export]
macro_rules! value {
    // ---- lists and sets: `@list [built elements,] rest of input` ----
    (@list [$($elems:expr,)*]) => { ::std::vec![$($elems,)*] };
    (@list [$($elems:expr),*]) => { ::std::vec![$($elems),*] };
    (@list [$($elems:expr,)*] null $($rest:tt)*) => {
        $crate::value!(@list [$($elems,)* $crate::value!(null)] $($rest)*)
    };
    (@list [$($elems:expr,)*] true $($rest:tt)*) => {
        $crate::value!(@list [$($elems,)* $crate::value!(true)] $($rest)*)
    };
    (@list [$($elems:expr,)*] false $($rest:tt)*) => {
        $crate::value!(@list [$($elems,)* $crate::value!(false)] $($rest)*)
    };
    (@list [$($elems:expr,)*] # {$($set:tt)*} $($rest:tt)*) => {
        $crate::value!(@list [$($elems,)* $crate::value!(#{$($set)*})] $($rest)*)
    };
    (@list [$($elems:expr,)*] [$($list:tt)*] $($rest:tt)*) => {
        $crate::value!(@list [$($elems,)* $crate::value!([$($list)*])] $($rest)*)
    };
    (@list [$($elems:expr,)*] {$($map:tt)*} $($rest:tt)*) => {
        $crate::value!(@list [$($elems,)* $crate::value!({$($map)*})] $($rest)*)
    };
    (@list [$($elems:expr,)*] $next:expr, $($rest:tt)*) => {
        $crate::value!(@list [$($elems,)* $crate::value!($next),] $($rest)*)
    };
    (@list [$($elems:expr,)*] $last:expr) => {
        $crate::value!(@list [$($elems,)* $crate::value!($last)])
    };
    (@list [$($elems:expr),*] , $($rest:tt)*) => {
        $crate::value!(@list [$($elems,)*] $($rest)*)
    };
    (@list [$($elems:expr),*] $unexpected:tt $($rest:tt)*) => {
        $crate::__value_unexpected!($unexpected)
    };

    // ---- maps: `@map entries (key tokens) (rest) (copy of rest)` ----
    // Done, with or without a trailing comma.
    (@map $entries:ident () () ()) => {};
    // An entry is complete; a comma follows.
    (@map $entries:ident [$($key:tt)+] ($value:expr) , $($rest:tt)*) => {
        $entries.push(($crate::Value::from($($key)+), $value));
        $crate::value!(@map $entries () ($($rest)*) ($($rest)*));
    };
    // An entry is complete but something other than a comma follows.
    (@map $entries:ident [$($key:tt)+] ($value:expr) $unexpected:tt $($rest:tt)*) => {
        $crate::__value_unexpected!($unexpected);
    };
    // The last entry, without a trailing comma.
    (@map $entries:ident [$($key:tt)+] ($value:expr)) => {
        $entries.push(($crate::Value::from($($key)+), $value));
    };
    // The value after the colon.
    (@map $entries:ident ($($key:tt)+) (: null $($rest:tt)*) $copy:tt) => {
        $crate::value!(@map $entries [$($key)+] ($crate::value!(null)) $($rest)*);
    };
    (@map $entries:ident ($($key:tt)+) (: true $($rest:tt)*) $copy:tt) => {
        $crate::value!(@map $entries [$($key)+] ($crate::value!(true)) $($rest)*);
    };
    (@map $entries:ident ($($key:tt)+) (: false $($rest:tt)*) $copy:tt) => {
        $crate::value!(@map $entries [$($key)+] ($crate::value!(false)) $($rest)*);
    };
    (@map $entries:ident ($($key:tt)+) (: # {$($set:tt)*} $($rest:tt)*) $copy:tt) => {
        $crate::value!(@map $entries [$($key)+] ($crate::value!(#{$($set)*})) $($rest)*);
    };
    (@map $entries:ident ($($key:tt)+) (: [$($list:tt)*] $($rest:tt)*) $copy:tt) => {
        $crate::value!(@map $entries [$($key)+] ($crate::value!([$($list)*])) $($rest)*);
    };
    (@map $entries:ident ($($key:tt)+) (: {$($map:tt)*} $($rest:tt)*) $copy:tt) => {
        $crate::value!(@map $entries [$($key)+] ($crate::value!({$($map)*})) $($rest)*);
    };
    (@map $entries:ident ($($key:tt)+) (: $value:expr , $($rest:tt)*) $copy:tt) => {
        $crate::value!(@map $entries [$($key)+] ($crate::value!($value)) , $($rest)*);
    };
    (@map $entries:ident ($($key:tt)+) (: $value:expr) $copy:tt) => {
        $crate::value!(@map $entries [$($key)+] ($crate::value!($value)));
    };
    // A key without a value: let the compiler say "unexpected end of macro invocation".
    (@map $entries:ident ($($key:tt)+) (:) $copy:tt) => { $crate::value!(); };
    (@map $entries:ident ($($key:tt)+) () $copy:tt) => { $crate::value!(); };
    // A colon with no key before it.
    (@map $entries:ident () (: $($rest:tt)*) ($colon:tt $($copy:tt)*)) => {
        $crate::__value_unexpected!($colon);
    };
    // A comma inside a key.
    (@map $entries:ident ($($key:tt)*) (, $($rest:tt)*) ($comma:tt $($copy:tt)*)) => {
        $crate::__value_unexpected!($comma);
    };
    // A key in parentheses is taken whole.
    (@map $entries:ident () (($key:expr) : $($rest:tt)*) $copy:tt) => {
        $crate::value!(@map $entries ($key) (: $($rest)*) (: $($rest)*));
    };
    // Take one more token into the key.
    (@map $entries:ident ($($key:tt)*) ($tt:tt $($rest:tt)*) $copy:tt) => {
        $crate::value!(@map $entries ($($key)* $tt) ($($rest)*) ($($rest)*));
    };

    // ---- entry points ----
    (null) => { $crate::Value::Nil };
    (true) => { $crate::Value::Bool(true) };
    (false) => { $crate::Value::Bool(false) };
    (#{}) => { $crate::Value::Set(::std::vec::Vec::new()) };
    (#{ $($tt:tt)+ }) => { $crate::Value::Set($crate::value!(@list [] $($tt)+)) };
    ([]) => { $crate::Value::List(::std::vec::Vec::new()) };
    ([ $($tt:tt)+ ]) => { $crate::Value::List($crate::value!(@list [] $($tt)+)) };
    ({}) => { $crate::Value::Map(::std::vec::Vec::new()) };
    ({ $($tt:tt)+ }) => {
        $crate::Value::Map({
            let mut entries: ::std::vec::Vec<($crate::Value, $crate::Value)> = ::std::vec::Vec::new();
            $crate::value!(@map entries () ($($tt)+) ($($tt)+));
            entries
        })
    };
    ($other:expr) => { $crate::Value::from($other) };
}

/// Builds a keyword [`Value`](crate::Value): `kw!("groceries")`, `kw!("shop/food")`.
///
/// ```
/// use atomsync_proto::{Value, kw};
/// assert_eq!(kw!("shop/food"), Value::Kw("shop/food".to_owned()));
/// ```
#[macro_export]
macro_rules! kw {
    ($name:expr) => {
        $crate::Value::Kw(::std::string::String::from($name))
    };
}

/// Makes the compiler point at a token `value!` did not expect (no rule matches it).
#[doc(hidden)]
#[macro_export]
macro_rules! __value_unexpected {
    () => {};
}
