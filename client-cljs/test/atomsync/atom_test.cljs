(ns atomsync.atom-test
  "The synced atom behaves like a Clojure atom where people rely on it: `swap!` and
  `reset!` return the new value at once, a watch fires once per change with the old and
  new values, a value that cannot be written throws and writes nothing; and its own
  parts: `status`, `close!`, `:resolve`, `:validator`, `:meta`, `loaded`."
  (:require [atomsync.core :as atomsync]
            [atomsync.harness :as h :refer [deftest* eventually is! is= thrown]]
            [clojure.string :as string]
            [promesa.core :as p]
            ["./../../../client-js/atomsync.js" :as client]))

(defn- recording-watch
  "Adds a watch to `a` that records its calls; returns the atom of `[old new]` pairs."
  [a]
  (let [calls (atom [])]
    (add-watch a ::record (fn [k r old new]
                            (is= ::record k "the watch's key")
                            (is! (identical? r a) "the reference")
                            (swap! calls conj [old new])))
    calls))

(defn- one-per-change?
  "Whether `calls` are one per change: none without a change, each starting where the
  one before ended, from `start` to `end`."
  [calls start end]
  (and (seq calls)
       (every? (fn [[old new]] (not= old new)) calls)
       (every? (fn [[[_ earlier-new] [later-old _]]] (identical? earlier-new later-old)) (partition 2 1 calls))
       (= start (first (first calls)))
       (identical? end (second (last calls)))))

(deftest* "swap! and reset! return the new value at once, and a watch fires once per change, local or remote"
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 2 (fn [ca cb]
                     (p/let [a (h/synced ca server "atom-watch")
                             b (h/synced cb server "atom-watch")]
                       (let [a-calls (recording-watch a)
                             b-calls (recording-watch b)
                             one (swap! a assoc "x" 1)]
                         (is= {"x" 1} one "swap! returns the new value")
                         (is! (identical? one @a) "@a is that value at once")
                         (is= [[{} {"x" 1}]] @a-calls "one watch call with old and new")
                         (is! (identical? one (swap! a identity)) "a swap! that changes nothing returns the value")
                         (is= 1 (count @a-calls) "and fires no watch")
                         (let [two (reset! a (assoc @a "y" '(1 [2]) "z" {:k #{:v}}))]
                           (is! (identical? two @a) "reset! too")
                           (is= [one two] (second @a-calls) "the second call")
                           (p/do
                             (eventually "b has both writes" #(= 3 (count @b)))
                             (is! (vector? (get @b "y")) "a list comes back as a vector")
                             (is! (one-per-change? @b-calls {} @b) (str "b's watch fired once per change: " (pr-str @b-calls)))
                             (let [before (count @b-calls)]
                               (swap! a update "x" inc)
                               (p/do (eventually "b has x = 2" #(= 2 (get @b "x")))
                                     (is= (inc before) (count @b-calls) "one more remote change, one more call")
                                     (is= [1 2] (map #(get % "x") (last @b-calls)) "with the old and the new value")
                                     (remove-watch b ::record)
                                     (swap! a assoc "x" 3)
                                     (eventually "b has x = 3" #(= 3 (get @b "x")))
                                     (is= (inc before) (count @b-calls) "a removed watch is not called")
                                     (add-watch a ::throws (fn [& _] (throw (ex-info "watch failed" {}))))
                                     (is= "watch failed" (ex-message (thrown #(swap! a assoc "w" 1) "a failing watch"))
                                          "a watch that throws on a local swap! throws to its caller, as with any atom")
                                     (is= 1 (get @a "w") "after the value changed")
                                     (remove-watch a ::throws))))))))))))

(deftest* "a swap! that cannot be written throws and writes nothing"
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 1 (fn [conn]
                     (p/let [a (h/synced conn server "atom-refused")]
                       (swap! a assoc "kept" 1)
                       (p/let [_ (h/wait-in-sync a)
                               before @a
                               calls (recording-watch a)]
                         (doseq [[what f pattern]
                                 [["a function" #(swap! a assoc "f" {:on-click inc} "also" 2)
                                   #"^atomsync: \"f\" at \[:on-click\] in atom-refused: a function has no Atomsync type"]
                                  ["a record" #(swap! a assoc "r" (ex-info "x" {})) #"has no Atomsync type"]
                                  ["a key that is not a string" #(swap! a assoc :kw 1) #"keys are strings, not :kw"]
                                  ["an empty key" #(swap! a assoc "" 1) #"1 to 1024 bytes"]
                                  ["a value over 1 MiB" #(swap! a assoc "big" (string/join (repeat 1100000 "x")) "also" 2)
                                   #"over the 1048576-byte limit"]
                                  ["not a map" #(reset! a [1 2]) #"holds a map"]]]
                           (let [e (thrown f what)]
                             (is! (re-find pattern (ex-message e)) (str what ": " (ex-message e)))
                             (is! (identical? before @a) (str what ": the value is unchanged"))))
                         (is= [] @calls "no watch fired")
                         (is= #{} (atomsync/pending-keys a) "nothing pending")
                         (p/let [json (h/pull server "atom-refused" :json)]
                           (is! (not (re-find #"\"also\"" json)) "the server has none of it")
                           (swap! a assoc "after" true)
                           (h/wait-in-sync a)))))))))

(deftest* "until the local state is loaded swap! throws; loaded and ready? resolve with the atom"
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 1 (fn [conn]
                     (let [a (atomsync/synced-atom conn "atom-loading" {:server (h/sync-url server)})]
                       (is= {} @a "empty before it is loaded")
                       (is! (re-find #"not loaded yet" (ex-message (thrown #(swap! a assoc "k" 1) "an early swap!"))) "says to wait")
                       (p/let [loaded (atomsync/loaded a)
                               ready (atomsync/ready? a)]
                         (is! (identical? a loaded) "loaded resolves with the atom")
                         (is! (identical? a ready) "ready? too")
                         (is! (identical? a (atomsync/synced-atom conn "atom-loading")) "the same atom when asked again")
                         (is= {"k" 1} (swap! a assoc "k" 1) "swap! works once loaded"))))))))

(deftest* "a conflict is settled by :resolve, a function of the local and current values"
  (fn []
    (p/let [server (h/shared-server)
            ca (h/client)
            ;; b hears of a's writes only when it pushes: its own stay in conflict.
            cb (h/client {:websocket nil :timing (assoc h/fast-timing :httpPollMs 60000)})]
      (-> (p/let [a (h/synced ca server "atom-resolve")
                  calls (atom [])
                  b (h/synced cb server "atom-resolve"
                              {:resolve (fn [local current]
                                          (swap! calls conj [local current])
                                          (if (identical? current atomsync/deleted)
                                            local
                                            (update current :tags into (:tags local))))})]
            (swap! a assoc "doc" {:tags #{:from-a}} "gone" 1)
            (p/do (h/wait-in-sync a)
                  (swap! a dissoc "gone")
                  (h/wait-in-sync a)
                  (swap! b assoc "doc" {:tags #{:from-b}} "gone" "back")
                  (eventually "a has the merged value" #(= #{:from-a :from-b} (:tags (get @a "doc"))))
                  (eventually "a has the re-created key" #(= "back" (get @a "gone")))
                  (is= #{[{:tags #{:from-b}} {:tags #{:from-a}}] ["back" atomsync/deleted]} (set @calls)
                       "called once per conflict with the local and the current value (deleted for a deleted one)")
                  (eventually "b holds what it pushed" #(and (= (get @a "doc") (get @b "doc")) (empty? (atomsync/pending-keys b))))))
          (p/finally #(do (atomsync/close! ca) (atomsync/close! cb)))))))

(deftest* "status says online, pending and offline; close! stops an atom"
  (fn []
    (p/let [server (h/start-server)
            conn (h/client)]
      (-> (p/let [a (h/synced conn server "atom-status")
                  states (atom [])
                  status (atomsync/status a)]
            (is! (identical? status (atomsync/status a)) "one status per atom")
            (is= :online (:state @status) "online when ready")
            (add-watch status ::states (fn [_ _ _ new] (swap! states conj (:state new))))
            (p/do (h/stop! server)
                  (eventually "offline" #(= :offline (:state @status)))
                  (swap! a assoc "k" 1)
                  (is= 1 (:pending @status) "one key pending")
                  (h/restart! server)
                  (eventually "online again" #(= :online (:state @status)))
                  (is= [:offline :online] (distinct (remove #{:pending} @states)) "the states it went through")
                  (atomsync/close! a)
                  (is! (re-find #"closed" (ex-message (thrown #(swap! a assoc "k" 2) "swap! after close!"))) "swap! throws once closed")
                  (is= {"k" 1} @a "@a keeps the last value")
                  (is! (not (identical? a (atomsync/synced-atom conn "atom-status" {:server (h/sync-url server)})))
                       "asking again after close! opens a new atom")))
          (p/finally #(p/do (atomsync/close! conn) (h/close-server! server)))))))

(deftest* "a validator refuses a swap! and it writes nothing; the atom has its metadata"
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 1 (fn [conn]
                     (p/let [a (h/synced conn server "atom-validator"
                                         {:validator #(every? (fn [v] (map? v)) (vals %)) :meta {:owner "tests"}})]
                       (is= {:owner "tests"} (meta a) "metadata")
                       (is= "Validator rejected reference state" (ex-message (thrown #(swap! a assoc "k" 1) "a refused value"))
                            "as an atom says it")
                       (is= {} @a "nothing changed")
                       (is= {"k" {:v 1}} (swap! a assoc "k" {:v 1}) "an accepted value")))))))

(deftest* "a write the storage cannot store is undone, and the status says why"
  (fn []
    (let [memory (client/MemoryStorage.)
          ;; Local writes (stored with strict durability) fail, as on a full disk.
          failing (js-obj "transaction" (fn [mode body ^js options]
                                          (if (= "strict" (some-> options .-durability))
                                            (js/Promise.reject (js/Error. "disk full"))
                                            (.transaction memory mode body options)))
                          "close" (fn []))]
      (p/let [conn (h/client {:storage failing})
              a (atomsync/loaded (atomsync/synced-atom conn "atom-failing" {:server "http://127.0.0.1:9/sync"}))
              calls (recording-watch a)]
        (is= {"k" 1} (swap! a assoc "k" 1) "swap! returns at once")
        (p/do (atomsync/stored a)
              (eventually "the write undone" #(= {} @a))
              (is= [[{} {"k" 1}] [{"k" 1} {}]] @calls "the watch saw the write and its undoing")
              (is= :storage (:code (:error @(atomsync/status a))) "the status says why")
              (is! (re-find #"disk full" (:message (:error @(atomsync/status a)))) "with the storage's reason")
              (atomsync/close! conn))))))
