(ns atomsync.values
  "Atomsync's typed values in ClojureScript terms, both ways, losslessly: `->js` turns a
  ClojureScript value into the JavaScript value `atomsync.js` encodes, `->clj` turns a
  value `atomsync.js` decoded into ClojureScript. The MessagePack codec itself is the
  JavaScript client's; nothing here reads or writes bytes.

  | Atomsync | ClojureScript |
  |---|---|
  | nil, boolean, string | nil, boolean, string |
  | integer | a number (|n| < 2^53), else a `js/BigInt` |
  | float | a number; one whose value is an integer (or -0.0) is a `Float` (see `float`), since ClojureScript's numbers cannot tell `1.0` from `1` |
  | bytes | `js/Uint8Array` |
  | list | vector (a list or any sequence is written as a list too) |
  | map (any keys) | map |
  | set | set |
  | instant | `js/Date` when it has whole milliseconds, else an `Instant` keeping nanoseconds |
  | uuid | `cljs.core/UUID` |
  | keyword (`name`, `ns/name`) | keyword |

  Maps and sets keep the order they were read in (Clojure's hash maps do not keep one
  past 8 entries): a read map remembers its keys' order in its metadata, so a value read
  and written back, changed or not, is written in the same order and an unchanged one
  is byte-identical. A value with no Atomsync type (a function, a symbol, a JavaScript
  object, a record without a `ToValue` mapping) throws an `ex-info` naming where it is."
  (:require [#?(:org.babashka/nbb "./../../../client-js/atomsync.js"
                :cljs "atomsync-client-js") :as client])
  (:refer-clojure :exclude [float num]))

;; A record or type of your own has no Atomsync type until it says how to write it.
(defprotocol ToValue
  "How a record or type of your own is written: `to-value` returns a value that has an
  Atomsync type (usually a plain map). It is read back as that value, not as the record."
  (to-value [x]))

(defn- negative-zero?
  "Whether `x` is -0.0 (a literal `-0.0` does not say it under nbb, whose reader reads 0)."
  [x]
  (and (number? x) (zero? x) (neg? (/ 1 x))))

(defn- float-text [x]
  (cond (negative-zero? x) "-0.0"
        (js/Number.isInteger x) (str x ".0")
        :else (str x)))

(deftype Float [value]
  IEquiv
  (-equiv [_ other] (and (instance? Float other) (js/Object.is value (.-value other))))
  IHash
  (-hash [_] (hash value))
  IPrintWithWriter
  (-pr-writer [_ writer _] (-write writer (str "#atomsync/float " (float-text value))))
  Object
  (toString [_] (float-text value)))

(defn- int-like?
  "A number ClojureScript would take for an integer: written as a float it needs `Float`."
  [x]
  (or (js/Number.isSafeInteger x) (negative-zero? x)))

(defn float
  "The float `x`: a `Float` when `x` is an integral number (or -0.0), which would
  otherwise be written as an integer; any other number is a float already and is
  returned as it is. `(float 1)` is the float 1.0, `(float 2.5)` is 2.5."
  [x]
  (cond (instance? Float x) x
        (not (number? x)) (throw (ex-info (str "atomsync/float takes a number, not " (pr-str x)) {:value x}))
        (int-like? x) (Float. x)
        :else x))

(defn num
  "The number `x` is: unwraps a `Float`, returns anything else as it is."
  [x]
  (if (instance? Float x) (.-value x) x))

(defn- inst-text [secs nanos]
  (.toString ^js (client/inst secs nanos)))

(deftype Instant [secs nanos]
  IEquiv
  (-equiv [_ other] (and (instance? Instant other) (== secs (.-secs other)) (== nanos (.-nanos other))))
  IHash
  (-hash [_] (hash-combine (hash secs) (hash nanos)))
  IPrintWithWriter
  (-pr-writer [_ writer _] (-write writer (str "#atomsync/inst \"" (inst-text secs nanos) "\"")))
  Object
  (toString [_] (inst-text secs nanos))
  ;; nbb's deftype implements neither protocol; compiled ClojureScript gets both.
  #?@(:org.babashka/nbb []
      :cljs [Inst
             (inst-ms* [_] (+ (* secs 1000) (js/Math.floor (/ nanos 1e6))))
             IComparable
             (-compare [_ other]
                       (if (instance? Instant other)
                         (let [by-secs (compare secs (.-secs other))]
                           (if (zero? by-secs) (compare nanos (.-nanos other)) by-secs))
                         (throw (js/Error. (str "cannot compare an Instant with " (pr-str other))))))]))

(defn- js-inst->clj [^js i]
  (let [secs (.-secs i) nanos (.-nanos i)]
    (if (zero? (rem nanos 1000000))
      (js/Date. (+ (* secs 1000) (/ nanos 1000000)))
      (Instant. secs nanos))))

(defn instant
  "An instant with nanosecond precision, from RFC 3339 text
  (`\"2026-11-24T10:00:00.123456789Z\"`, any offset), a `js/Date`, or whole seconds and
  nanoseconds since the Unix epoch. A `js/Date` when it has whole milliseconds (so that
  it equals the `#inst` of the same time), else an `Instant`. Throws outside years 0001
  to 9999."
  ([x]
   (js-inst->clj (try (client/inst x)
                      (catch :default ^js e (throw (ex-info (str "atomsync/instant: " (.-message e)) {:value x} e))))))
  ([secs nanos]
   (js-inst->clj (try (client/inst secs nanos)
                      (catch :default ^js e (throw (ex-info (str "atomsync/instant: " (.-message e)) {:secs secs :nanos nanos} e)))))))

(defn epoch-nanos
  "Nanoseconds since the Unix epoch of a `js/Date` or an `Instant`, exactly, as a `js/BigInt`."
  [x]
  (cond (instance? Instant x) (+ (* (js/BigInt (.-secs x)) (js/BigInt 1000000000)) (js/BigInt (.-nanos x)))
        (instance? js/Date x) (* (js/BigInt (.getTime x)) (js/BigInt 1000000))
        :else (throw (ex-info (str "atomsync/epoch-nanos takes a js/Date or an Instant, not " (pr-str x)) {:value x}))))

(defn bigint?
  "Whether `x` is a `js/BigInt` (how integers beyond 2^53 are held)."
  [x]
  (and (some? x) (identical? (type x) js/BigInt)))

;; Compiled ClojureScript hashes a value it knows nothing about by giving it an id, which
;; a BigInt (a primitive) cannot carry: without this a BigInt could be neither a set
;; element nor a map key. nbb cannot extend host types; see `->clj`.
#?(:org.babashka/nbb nil
   :cljs (extend-type js/BigInt
           IHash
           (-hash [x] (hash (.toString x)))))

;; ---------------------------------------------------------------------------------------
;; ClojureScript -> JavaScript

(def max-depth
  "Containers (list, map, set) one value may nest, as the server allows by default."
  client/MAX_DEPTH)

(def max-value-bytes
  "The largest value the server accepts by default, in bytes of MessagePack."
  client/MAX_VALUE_BYTES)

(def ^:private order-key ::order)

(def ^:private types-hint
  "values are nil, booleans, numbers, strings, keywords, UUIDs, instants, bytes (Uint8Array), vectors, lists, maps and sets")

(defn- describe [x]
  (cond (fn? x) "a function"
        (symbol? x) (str "the symbol " x)
        (record? x) (str "a record " (pr-str (type x)) " (extend atomsync.values/ToValue to write it)")
        (array? x) "a JavaScript array (use a vector)"
        (object? x) "a JavaScript object (use a map)"
        (instance? js/Map x) "a JavaScript Map (use a map)"
        (instance? js/Set x) "a JavaScript Set (use a set)"
        :else (str "a " (or (some-> (type x) .-name not-empty) "value of unknown kind"))))

(defn- value-error
  "An error about the value at `path` (a JS array of the keys and indexes leading there)."
  [path what data]
  (ex-info (str "atomsync: " (when (pos? (.-length path)) (str "at " (pr-str (vec path)) ": ")) what)
           (assoc data :atomsync/error :invalid-value :path (vec path) :reason what)))

(declare to-js)

(defn- seq->js [xs depth path]
  (let [out #js []]
    (if (counted? xs)
      (reduce (fn [i x]
                (.push path i)
                (.push out (to-js x depth path))
                (.pop path)
                (inc i))
              0 xs)
      ;; A lazy sequence may be endless: past as many elements as bytes a value may take,
      ;; it cannot be written anyway.
      (loop [s (seq xs) i 0]
        (when s
          (when (> i max-value-bytes)
            (throw (value-error path (str "a sequence of more than " max-value-bytes " elements is larger than a value may be") {})))
          (.push path i)
          (.push out (to-js (first s) depth path))
          (.pop path)
          (recur (next s) (inc i)))))
    out))

(defn- in-order
  "Calls `f` on each entry (or element) of `coll`: first those its `::order` metadata
  names, in that order, then the others."
  [coll order f]
  (if (nil? order)
    (run! f coll)
    (let [done (reduce (fn [n k]
                         (if-let [entry (if (map? coll) (find coll k) (when (contains? coll k) k))]
                           (do (f entry) (inc n))
                           n))
                       0 order)]
      (when (< done (count coll))
        (let [seen (set order)]
          (run! #(when-not (contains? seen (if (map? coll) (key %) %)) (f %)) coll))))))

(defn- map->js [m depth path]
  (let [out (js/Map.)]
    (in-order m (get (meta m) order-key)
              (fn [[k v]]
                (.push path k)
                (let [js-key (try (to-js k depth path)
                                  (catch :default ^js e
                                    (throw (if (:atomsync/error (ex-data e))
                                             (ex-info (str (.-message e) " (a map key)") (update (ex-data e) :reason str " (a map key)"))
                                             e))))]
                  (.set out js-key (to-js v depth path)))
                (.pop path)))
    out))

(defn- set->js [s depth path]
  (let [out (js/Set.)]
    (in-order s (get (meta s) order-key)
              (fn [x]
                (.push path x)
                (.add out (to-js x depth path))
                (.pop path)))
    out))

(defn- keyword->js [k path]
  (try (client/kw (subs (str k) 1))
       (catch :default ^js e
         (throw (value-error path (str "the keyword " k " cannot be written: " (.-message e)) {:value k})))))

(defn- uuid->js [u path]
  (try (client/uuid (str u))
       (catch :default _
         (throw (value-error path (str "#uuid \"" u "\" is not a UUID (8-4-4-4-12 hex digits)") {:value u})))))

(defn- date->js [d path]
  (try (client/inst d)
       (catch :default ^js e
         (throw (value-error path (str "the date " (pr-str d) " cannot be written: " (.-message e)) {:value d})))))

(defn- container [depth path]
  (when (>= depth max-depth)
    (throw (value-error path (str "nested deeper than " max-depth " containers (lists, maps, sets)") {})))
  (inc depth))

(defn- to-js [x depth path]
  (cond
    (nil? x) nil
    (string? x) x
    (number? x) x
    (boolean? x) x
    (keyword? x) (keyword->js x path)
    (record? x) (if (satisfies? ToValue x)
                  (to-js (to-value x) (container depth path) path)
                  (throw (value-error path (str (describe x) " has no Atomsync type (" types-hint ")") {:value x})))
    (map? x) (map->js x (container depth path) path)
    (vector? x) (seq->js x (container depth path) path)
    (set? x) (set->js x (container depth path) path)
    (sequential? x) (seq->js x (container depth path) path)
    (instance? Float x) (client/float (.-value x))
    (instance? Instant x) (client/inst (.-secs x) (.-nanos x))
    (instance? js/Date x) (date->js x path)
    (uuid? x) (uuid->js x path)
    (instance? js/Uint8Array x) x
    (bigint? x) x
    (satisfies? ToValue x) (to-js (to-value x) (container depth path) path)
    :else (throw (value-error path (str (describe x) " has no Atomsync type (" types-hint ")") {:value x}))))

(defn ->js
  "The JavaScript value `atomsync.js` writes for the ClojureScript value `x`. Throws an
  `ex-info` (`{:atomsync/error :invalid-value, :path [...]}`) naming where a part of
  `x` has no Atomsync type or nests too deep."
  [x]
  (to-js x 0 #js []))

;; ---------------------------------------------------------------------------------------
;; JavaScript -> ClojureScript

(def ^:private hash-threshold
  "Up to this many entries ClojureScript keeps a map (or set) in insertion order."
  8)

(defn- hashable-check
  "nbb cannot hash a BigInt (see the `extend-type` above): say so rather than fail deep in
  `hash`."
  [k]
  #?(:org.babashka/nbb
     (when (bigint? k)
       (throw (ex-info (str "atomsync: under nbb an integer beyond 2^53 (" k ") cannot be a set element or map key, which compiled ClojureScript allows")
                       {:atomsync/error :unhashable :value k})))
     :cljs nil)
  k)

(defn- ordered
  "`coll` with the order of `ks` (a JS array) in its metadata when it is too large to keep
  that order itself."
  [coll ks]
  (if (> (.-length ks) hash-threshold) (with-meta coll {order-key (vec ks)}) coll))

(declare ->clj)

(defn- js-map->clj [^js m]
  (let [ks #js []
        out (volatile! (transient {}))]
    (.forEach m (fn [v k]
                  (let [k (hashable-check (->clj k))]
                    (.push ks k)
                    (vswap! out assoc! k (->clj v)))))
    (ordered (persistent! @out) ks)))

(defn- object->clj [o]
  (let [ks (js-keys o)]
    (ordered (persistent! (reduce (fn [m k] (assoc! m k (->clj (unchecked-get o k)))) (transient {}) ks))
             ks)))

(defn- js-set->clj [^js s]
  (let [ks #js []
        out (volatile! (transient #{}))]
    (.forEach s (fn [x]
                  (let [x (hashable-check (->clj x))]
                    (.push ks x)
                    (vswap! out conj! x))))
    (ordered (persistent! @out) ks)))

(defn ->clj
  "The ClojureScript value of a value `atomsync.js` decoded."
  [x]
  (cond
    (nil? x) nil
    (string? x) x
    (number? x) (if (negative-zero? x) (Float. x) x)
    (boolean? x) x
    (array? x) (vec (.map x (fn [item] (->clj item))))
    (instance? client/Keyword x) (keyword (.-name ^js x))
    (instance? client/Float x) (Float. (.-value ^js x))
    (instance? client/Inst x) (js-inst->clj x)
    (instance? client/Uuid x) (uuid (.toString ^js x))
    (instance? js/Uint8Array x) x
    (instance? js/Map x) (js-map->clj x)
    (instance? js/Set x) (js-set->clj x)
    (bigint? x) x
    (object? x) (object->clj x)
    :else (throw (ex-info (str "atomsync: a decoded value of unexpected kind: " (describe x)) {:value x}))))

;; ---------------------------------------------------------------------------------------
;; Bytes, for tests and tools

(defn encode
  "The canonical MessagePack bytes (a `js/Uint8Array`) of a ClojureScript value: what the
  server stores for it."
  [x]
  (client/encode (->js x)))

(defn decode
  "The ClojureScript value of MessagePack bytes."
  [bytes]
  (->clj (client/decode bytes)))
