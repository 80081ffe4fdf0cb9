(ns atomsync.values-test
  "Clojure's types through Atomsync's MessagePack and back, without a server: every type
  keeps its kind, a value read and written back is byte-identical (maps and sets of any
  size keep their order), and what has no Atomsync type is refused with where it is."
  (:require [atomsync.core :as atomsync]
            [atomsync.harness :refer [deftest* is! is= thrown hex]]
            [atomsync.values :as values]
            ["./../../../client-js/atomsync.js" :as client]))

(defrecord Point [x y])
(defrecord Money [amount currency])

(extend-protocol values/ToValue
  Money
  (to-value [m] {:amount (:amount m) :currency (:currency m)}))

(def every-type
  {:nil nil
   :yes true
   :int 42
   :neg -7
   :max-safe 9007199254740991
   :u64max (js/BigInt "18446744073709551615")
   :i64min (js/BigInt "-9223372036854775808")
   :float 2.5
   :float-one (atomsync/float 1)
   :negative-zero (atomsync/float -0.0)
   :str "héllo"
   :bytes (js/Uint8Array. #js [0 1 255])
   :list '(1 "a" nil)
   :vector [1 [2 [3]]]
   :lazy (map inc (range 3))
   :inst #inst "2026-11-24T10:00:00.123Z"
   :inst-ns (atomsync/instant "2026-11-24T10:00:00.123456789Z")
   :uuid #uuid "550e8400-e29b-41d4-a716-446655440000"
   :kw :groceries
   :ns-kw :todo/done
   :set #{:groceries 1 "one"}
   :any-keys {1 "one" :k [true] [1 2] "vector key" #{:s} "set key"}
   :nested {"a" [{"b" #{}}]}})

(defn- bytes= [x y] (= (hex x) (hex y)))

(deftest* "every Clojure type survives MessagePack with its kind"
  (fn []
    (let [bytes (values/encode every-type)
          back (values/decode bytes)]
      (is= (dissoc every-type :bytes :list :lazy) (dissoc back :bytes :list :lazy) "equal after the round trip")
      (is= [1 "a" nil] (:list back) "a list comes back as a vector")
      (is! (vector? (:list back)) "a vector")
      (is= [1 2 3] (:lazy back) "a lazy sequence is written as a list")
      (is= "0,1,255" (.join (:bytes back)) "bytes")
      (is! (instance? js/Uint8Array (:bytes back)) "bytes are a Uint8Array")
      (is! (values/bigint? (:u64max back)) "u64 max is a BigInt")
      (is= "18446744073709551615" (str (:u64max back)) "exactly")
      (is= 9007199254740991 (:max-safe back) "2^53 - 1 is a number")
      (is! (instance? values/Float (:float-one back)) "1.0 stays a float")
      (is= "#atomsync/float -0.0" (pr-str (:negative-zero back)) "-0.0 stays -0.0")
      (is! (instance? js/Date (:inst back)) "an instant with whole milliseconds is a js/Date")
      (is! (instance? values/Instant (:inst-ns back)) "one with nanoseconds is an Instant")
      (is= 123456789 (.-nanos (:inst-ns back)) "with its nanoseconds")
      (is= "todo" (namespace (:ns-kw back)) "a keyword keeps its namespace")
      (is! (uuid? (:uuid back)) "a UUID")
      (is! (set? (:set back)) "a set")
      (is= "vector key" (get (:any-keys back) [1 2]) "maps with any keys")
      (is! (bytes= bytes (values/encode back)) "written back, byte for byte"))))

(deftest* "integers and floats keep their kind: 1 and 1.0 differ, as on the wire"
  (fn []
    (is= "01" (hex (values/encode 1)) "1 is an integer")
    (is= "cb3ff0000000000000" (hex (values/encode (atomsync/float 1))) "(float 1) is a float64")
    (is= 2.5 (atomsync/float 2.5) "a float that is not integral needs no wrapper")
    (is! (not= 1 (values/decode (values/encode (atomsync/float 1)))) "1.0 read back is not 1")
    (is= 1 (values/num (atomsync/float 1)) "num unwraps it")
    (is= "cd0400" (hex (values/encode (js/BigInt 1024))) "a small BigInt is written as the smallest integer")
    (is= 1024 (values/decode (values/encode (js/BigInt 1024))) "and read back as a number")
    (is= "cb" (subs (hex (values/encode 1e300)) 0 2) "a number beyond 2^53 is a float (a BigInt is the exact integer)")))

(deftest* "instants: a js/Date where nothing is lost, else an Instant with nanoseconds"
  (fn []
    (is! (instance? js/Date (atomsync/instant "2026-11-24T10:00:00.123Z")) "whole milliseconds: a Date")
    (is= #inst "2026-11-24T10:00:00.123Z" (atomsync/instant "2026-11-24T11:00:00.123+01:00") "any offset")
    (let [i (atomsync/instant "2026-11-24T10:00:00.000000001Z")]
      (is= "#atomsync/inst \"2026-11-24T10:00:00.000000001Z\"" (pr-str i) "printed with its nanoseconds")
      (is= (atomsync/instant 1795514400 1) i "from seconds and nanoseconds")
      (is= "1795514400000000001" (str (values/epoch-nanos i)) "epoch nanoseconds, exactly"))
    (is! (re-find #"0001 to 9999" (ex-message (thrown #(atomsync/instant "0000-01-01T00:00:00Z") "year 0"))) "out of range")))

(deftest* "a value read and written back is byte-identical, maps and sets of any size in their order"
  (fn []
    (let [ks (map #(str "k" %) (shuffle (range 40)))
          js-map (js/Map. (clj->js (map-indexed (fn [i k] [k i]) ks)))
          js-set (js/Set. (clj->js (map #(client/kw (str "e" %)) (shuffle (range 30)))))
          written (client/encode #js {:doc js-map :tags js-set})
          read (values/decode written)]
      (is! (bytes= written (values/encode read)) "unchanged: the same bytes")
      (is! (bytes= (client/encode #js {:doc (doto (js/Map. js-map) (.set "k7" "changed")) :tags js-set})
                   (values/encode (assoc-in read ["doc" "k7"] "changed")))
           "one entry changed: every other in its place")
      (is= (set (map #(keyword (str "e" %)) (range 30))) (get read "tags") "the set")
      (is= 40 (count (get read "doc")) "the map"))))

(deftest* "a value with no Atomsync type is refused, saying what and where"
  (fn []
    (doseq [[value what] [[{:when inc} "a function"]
                          [{:p (->Point 1 2)} "a record"]
                          [{:s 'sym} "the symbol sym"]
                          [{:o #js {:a 1}} "a JavaScript object"]
                          [{:a #js [1]} "a JavaScript array"]
                          [{:ref (atom 1)} "has no Atomsync type"]]]
      (let [e (thrown #(values/->js value) (pr-str what))]
        (is! (re-find (re-pattern what) (ex-message e)) (str (ex-message e) " says " what))
        (is= (vec (keys value)) (:path (ex-data e)) "the path to it")))
    (let [e (thrown #(values/->js {:todos [{:done? false :on-done identity}]}) "nested")]
      (is= [:todos 0 :on-done] (:path (ex-data e)) "a path into nested values")
      (is! (re-find #"at \[:todos 0 :on-done\]: a function has no Atomsync type" (ex-message e)) (ex-message e)))
    (let [e (thrown #(values/->js {identity 1}) "a function as a map key")]
      (is! (re-find #"\(a map key\)" (ex-message e)) (ex-message e)))
    (is! (re-find #"keyword :a b" (ex-message (thrown #(values/->js (keyword "a b")) "a keyword with a space"))) "an invalid keyword")))

(deftest* "a record is written through its ToValue mapping"
  (fn []
    (is= {:amount 5 :currency :EUR} (values/decode (values/encode (->Money 5 :EUR))) "the record's mapping")
    (is! (re-find #"ToValue" (ex-message (thrown #(values/->js (->Point 1 2)) "an unmapped record"))) "says how to map one")))

(deftest* "limits: endless sequences and deep nesting are refused, not hung on"
  (fn []
    (is! (re-find #"more than 1048576 elements" (ex-message (thrown #(values/->js {:xs (range)}) "an endless sequence"))) "endless")
    (let [deep (nth (iterate vector 1) 65)]
      (is! (re-find #"deeper than 64" (ex-message (thrown #(values/->js deep) "65 levels"))) "too deep"))
    (is= 64 (count (re-seq #"91" (hex (values/encode (nth (iterate vector 1) 64))))) "64 levels are fine")))
