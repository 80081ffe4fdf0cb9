(ns atomsync.interop-test
  "Types survive the round trip between ClojureScript and the native Rust client
  (client-rs/examples/interop.rs) through the real server, byte for byte: what
  ClojureScript writes, Rust reads with the same types (compared as the tagged JSON Rust
  prints, which names every type and keeps the order); what Rust writes arrives as
  Clojure's types, and written back, unchanged or with one field changed, it is the same
  bytes on the server."
  (:require [atomsync.core :as atomsync]
            [atomsync.harness :as h :refer [deftest* eventually is! is=]]
            [atomsync.values :as values]
            [clojure.string :as string]
            [promesa.core :as p]
            ["./../../../client-js/atomsync/decode.js" :as decode-js]))

;; The value client-js/e2e/interop.test.js and the Rust example agree on, as tagged JSON.
(def every-type-json
  (str "{\"nil\":null,\"yes\":true,\"int\":42,\"neg\":-7,\"maxSafe\":9007199254740991,\"u64max\":18446744073709551615,"
       "\"i64min\":-9223372036854775808,\"float\":2.5,\"floatOne\":1.0,\"nan\":{\"$float\":\"NaN\"},\"str\":\"héllo\","
       "\"bytes\":{\"$bytes\":\"AAH/\"},\"list\":[1,\"a\",null],\"inst\":{\"$inst\":\"2026-11-24T10:00:00.123456789Z\"},"
       "\"uuid\":{\"$uuid\":\"550e8400-e29b-41d4-a716-446655440000\"},\"kw\":{\"$kw\":\"todo/done\"},"
       "\"set\":{\"$set\":[{\"$kw\":\"groceries\"},1]},\"anyKeys\":{\"$map\":[[1,\"one\"],[{\"$kw\":\"k\"},[true]]]},"
       "\"dollar\":{\"$map\":[[\"$a\",1]]},\"nested\":{\"a\":[{\"b\":{\"$set\":[]}}]}}"))

(defn- every-type
  "The same value in ClojureScript, its keys in that order (an array map keeps it)."
  []
  (array-map "nil" nil
             "yes" true
             "int" 42
             "neg" -7
             "maxSafe" 9007199254740991
             "u64max" (js/BigInt "18446744073709551615")
             "i64min" (js/BigInt "-9223372036854775808")
             "float" 2.5
             "floatOne" (atomsync/float 1)
             "nan" ##NaN
             "str" "héllo"
             "bytes" (js/Uint8Array. #js [0 1 255])
             "list" '(1 "a" nil)
             "inst" (atomsync/instant "2026-11-24T10:00:00.123456789Z")
             "uuid" #uuid "550e8400-e29b-41d4-a716-446655440000"
             "kw" :todo/done
             "set" (with-meta #{:groceries 1} {:atomsync.values/order [:groceries 1]})
             "anyKeys" (array-map 1 "one" :k [true])
             "dollar" {"$a" 1}
             "nested" {"a" [{"b" #{}}]}))

(defn- stored-bytes
  "The bytes the server holds for `k` in `group` (its MessagePack pull, values kept as
  they are), as hex; nil while it has none."
  [server group k]
  (p/let [body (h/pull server group)]
    (some (fn [doc] (when (= k (.-key doc)) (h/hex (.-bytes (.-value doc)))))
          (.-changes (decode-js/decodeMessage body)))))

(defn- check-types
  "Fails unless `v` holds every type as Clojure's."
  [v]
  (is= nil (get v "nil") "nil")
  (is= true (get v "yes") "a boolean")
  (is= [42 -7 9007199254740991] (map #(get v %) ["int" "neg" "maxSafe"]) "integers are numbers")
  (is! (and (values/bigint? (get v "u64max")) (= "18446744073709551615" (str (get v "u64max")))) "u64 max is a BigInt")
  (is! (and (values/bigint? (get v "i64min")) (= "-9223372036854775808" (str (get v "i64min")))) "i64 min is a BigInt")
  (is= 2.5 (get v "float") "a float")
  (is= (atomsync/float 1) (get v "floatOne") "1.0 is a Float, not 1")
  (is! (js/isNaN (get v "nan")) "NaN")
  (is= "héllo" (get v "str") "a string")
  (is= "0,1,255" (.join (get v "bytes")) "bytes are a Uint8Array")
  (is! (vector? (get v "list")) "a list is a vector")
  (is= [1 "a" nil] (get v "list") "with its items")
  (is= (atomsync/instant "2026-11-24T10:00:00.123456789Z") (get v "inst") "an instant keeps its nanoseconds")
  (is= #uuid "550e8400-e29b-41d4-a716-446655440000" (get v "uuid") "a UUID")
  (is= :todo/done (get v "kw") "a namespaced keyword")
  (is= #{:groceries 1} (get v "set") "a set")
  (is= {1 "one" :k [true]} (get v "anyKeys") "a map with any keys")
  (is= {"$a" 1} (get v "dollar") "a map with a $ key")
  (is= {"a" [{"b" #{}}]} (get v "nested") "nested"))

(deftest* "the Rust client reads what ClojureScript wrote with identical types, and the server has its exact bytes"
  {:timeout-ms 60000}
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 1 (fn [conn]
                     (p/let [a (h/synced conn server "interop")
                             value (every-type)]
                       (swap! a assoc "from-cljs" value)
                       (p/let [stored (eventually "the server to have it" #(stored-bytes server "interop" "from-cljs"))
                               read-by-rust (h/rust-interop server "read" "interop" "from-cljs")]
                         (is= (h/hex (values/encode value)) stored "the server holds the bytes ClojureScript wrote")
                         (is= every-type-json read-by-rust "Rust reads every type (its tagged JSON)"))))))))

(deftest* "ClojureScript reads the Rust client's value as Clojure's types, and writes it back byte for byte"
  {:timeout-ms 60000}
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 1 (fn [conn]
                     (p/let [a (h/synced conn server "interop")
                             _ (h/rust-interop server "write" "interop" "from-rust")
                             _ (eventually "the Rust value to arrive" #(contains? @a "from-rust"))
                             from-rust (get @a "from-rust")
                             rust-bytes (stored-bytes server "interop" "from-rust")]
                       (check-types from-rust)
                       (is= rust-bytes (h/hex (values/encode from-rust)) "read and encoded again: the same bytes")
                       ;; Unchanged, under another key: the server gets the very bytes Rust wrote.
                       (swap! a assoc "copy" from-rust)
                       ;; One field changed: every other one stays as it was, in its place.
                       (swap! a update "from-rust" assoc "str" "changed")
                       (p/let [_ (h/wait-in-sync a)
                               copy-bytes (stored-bytes server "interop" "copy")
                               changed-by-rust (h/rust-interop server "read" "interop" "from-rust")]
                         (is= rust-bytes copy-bytes "written back unchanged: byte-identical on the server")
                         (is= (string/replace every-type-json "\"str\":\"héllo\"" "\"str\":\"changed\"") changed-by-rust
                              "Rust reads the read-modify-write with every type, in order"))))))))
