(ns atomsync.core
  "The Atomsync client for ClojureScript: a synced atom that an application uses like any
  other atom (`swap!`, `reset!`, `@`, `add-watch`), holding a map from document key (a
  string) to a value that keeps Clojure's types. It is a thin layer over the JavaScript
  client `atomsync.js`, whose storage (IndexedDB, or memory where there is none), sync
  engine and codec it uses as they are; `atomsync.values` converts the values.

  ```clojure
  (-> (atomsync/open \"my-app\")
      (.then (fn [conn]
               (let [todos (atomsync/synced-atom conn \"todo\" {:server \"http://localhost:8090/sync\"})]
                 (-> (atomsync/ready? todos)
                     (.then (fn [_] (swap! todos assoc \"todo:1\" {:text \"Buy milk\" :tags #{:groceries}}))))))))
  ```

  How it behaves as an atom:
  - `swap!` and `reset!` return the new value at once and `@a` shows it; the write is
    stored locally in the background and pushed when the server can be reached. A value
    with no Atomsync type, a key that is not a string of 1 to 1024 bytes, or a value over
    the server's limits throws and writes nothing.
  - A watch fires once per change, local or from the server, with the old and new maps
    (not for a `swap!` that returns the very map it was given).
  - Values are compared by identity: keys whose value is the same object as before are
    neither encoded nor written, so a `swap!` costs what it changes.
  - Until the local state is loaded (`loaded`, at most a few milliseconds), `@a` is `{}`
    and `swap!` throws: wait for `ready?` or `loaded` first."
  (:refer-clojure :exclude [float])
  (:require [atomsync.values :as values]
            [clojure.string :as string]
            [#?(:org.babashka/nbb "./../../../client-js/atomsync.js"
                :cljs "atomsync-client-js") :as client]))

(def float
  "The float `x`: see `atomsync.values/float`. `(float 1)` is written as 1.0, not 1."
  values/float)

(def instant
  "An instant with nanoseconds: see `atomsync.values/instant`."
  values/instant)

(deftype Deleted []
  IPrintWithWriter
  (-pr-writer [_ writer _] (-write writer "#atomsync/deleted")))

(def deleted
  "What a `:resolve` function receives for a side that is deleted (or absent), and
  returns to delete the key."
  (Deleted.))

;; ---------------------------------------------------------------------------------------
;; The connection

(defn open
  "A promise of the connection to the local database `name` (IndexedDB in a browser;
  where there is none, as under Node, in memory unless `:storage` says otherwise).
  Options:
  - `:storage` a storage object, e.g. from `atomsync.file-storage/open` (Node: a file
    that survives restarts)
  - `:websocket` a WebSocket constructor, or nil to sync over HTTP only; default: the
    global one (Node 22+, browsers; Node 20 with `--experimental-websocket`), without
    which the atoms sync over HTTP
  - `:timing` overrides of the JavaScript client's `DEFAULT_TIMING`, e.g.
    `{:httpPollMs 500}`
  - `:indexed-db` an `IDBFactory` instead of the global one"
  ([name] (open name {}))
  ([name {:keys [storage timing indexed-db] :as options}]
   (let [browser-storage? (and (nil? storage) (or indexed-db (.-indexedDB js/globalThis)))
         js-options (js-obj)]
     (when storage (unchecked-set js-options "storage" storage))
     (when indexed-db (unchecked-set js-options "indexedDB" indexed-db))
     (when (contains? options :websocket)
       (unchecked-set js-options "WebSocket" (:websocket options)))
     (when timing (unchecked-set js-options "timing" (clj->js timing)))
     ;; Tabs share an IndexedDB database and coordinate over a BroadcastChannel and Web
     ;; Locks. A store in memory or in a file is this process's own: no other "tab"
     ;; shares it, and an open channel would keep Node from exiting.
     (when-not browser-storage?
       (unchecked-set js-options "BroadcastChannel" nil)
       (unchecked-set js-options "locks" nil))
     (client/open name js-options))))

;; ---------------------------------------------------------------------------------------
;; The status, an atom-like to watch

(defn- status-map [^js status write-error]
  (let [online (boolean (.-online status))
        pending (.-pending status)
        error (.-error status)]
    {:state (cond (not online) :offline (pos? pending) :pending :else :online)
     :online? online
     :transport (some-> (.-transport status) keyword)
     :pending pending
     :cursor (.-cursor status)
     :ready? (boolean (.-ready status))
     :leader? (boolean (.-leader status))
     :error (if error {:code (keyword (.-code ^js error)) :message (.-message ^js error)} write-error)}))

(deftype Status [value watches]
  IDeref
  (-deref [_] @value)
  IWatchable
  (-notify-watches [this old new]
    (doseq [[k f] @watches]
      (try (f k this old new)
           (catch :default ^js e (js/console.error "atomsync: a status watch failed:" e)))))
  (-add-watch [this k f] (vswap! watches assoc k f) this)
  (-remove-watch [this k] (vswap! watches dissoc k) this)
  IPrintWithWriter
  (-pr-writer [_ writer opts]
    (-write writer "#object[atomsync.core.Status ")
    (-write writer (pr-str @value))
    (-write writer "]")))

(defn- set-status! [^Status s next]
  (let [old @(.-value s)]
    (when (not= old next)
      (vreset! (.-value s) next)
      (-notify-watches s old next))))

;; ---------------------------------------------------------------------------------------
;; The synced atom

(declare commit! notify!)

;; `state` is the map `@a` returns, `js-view` the JavaScript atom's Map it stands for
;; (values compared by identity to see what changed), `own` the Map a `swap!` of ours is
;; installing (its change needs no conversion back).
(deftype SyncedAtom [^js js-atom state js-view own watches loaded? closed? write-error
                     last-write status validator meta-map unwatch]
  IDeref
  (-deref [_] @state)
  IReset
  (-reset! [this value] (commit! this (fn [_] value)))
  ISwap
  (-swap! [this f] (commit! this f))
  (-swap! [this f x] (commit! this #(f % x)))
  (-swap! [this f x y] (commit! this #(f % x y)))
  (-swap! [this f x y more] (commit! this #(apply f % x y more)))
  IWatchable
  (-notify-watches [this old new] (notify! this old new false))
  (-add-watch [this k f] (vswap! watches assoc k f) this)
  (-remove-watch [this k] (vswap! watches dissoc k) this)
  IMeta
  (-meta [_] meta-map)
  IPrintWithWriter
  (-pr-writer [_ writer opts]
    (-write writer "#object[atomsync.core.SyncedAtom ")
    (-write writer (pr-str {:group (.-group js-atom) :val @state}))
    (-write writer "]")))

(defn- notify!
  "Calls the watches. After a local `swap!` a failing watch throws to its caller, as with
  any atom; after a change from elsewhere it is reported and the others still run."
  [^SyncedAtom a old new remote?]
  (doseq [[k f] @(.-watches a)]
    (if remote?
      (try (f k a old new)
           (catch :default ^js e (js/console.error "atomsync: a watch failed:" e)))
      (f k a old new))))

(def ^:private absent
  "A key's value in a change: the key is to be deleted."
  #js {})

(def ^:private ^js utf8 (js/TextEncoder.))

(defn- check-key [group k]
  (when-not (string? k)
    (throw (ex-info (str "atomsync: " group ": keys are strings, not " (pr-str k)) {:atomsync/error :invalid-key :key k})))
  (let [n (.-length (.encode utf8 k))]
    (when-not (<= 1 n 1024)
      (throw (ex-info (str "atomsync: " group ": key " (pr-str (subs k 0 40)) " must be 1 to 1024 bytes of UTF-8, not " n)
                      {:atomsync/error :invalid-key :key k})))))

(defn- write-error
  "`e`, thrown converting the value of `k`, as an error that says where."
  [group k e]
  (let [data (ex-data e)
        reason (or (:reason data) (string/replace-first (str (ex-message e)) #"^atomsync: " ""))
        path (:path data)]
    (ex-info (str "atomsync: " (pr-str k) (when (seq path) (str " at " (pr-str path))) " in " group ": " reason)
             (merge {:atomsync/error :invalid-value} data {:group group :key k})
             e)))

(defn- changes
  "The keys whose value in `new` is not the very value of `old`, as a JS array of
  `#js [key js-value]` (`absent`: deleted), converted and checked: throws before anything
  is written."
  [group old new]
  (let [out #js []
        kept (volatile! 0)]
    (reduce-kv (fn [_ k v]
                 (let [before (get old k absent)]
                   (when-not (identical? before absent) (vswap! kept inc))
                   (when-not (identical? before v)
                     (check-key group k)
                     (.push out #js [k (try (values/->js v) (catch :default ^js e (throw (write-error group k e))))]))))
               nil new)
    ;; Keys that are gone, looked for only when some are.
    (when (< @kept (count old))
      (reduce-kv (fn [_ k _] (when-not (contains? new k) (.push out #js [k absent]))) nil old))
    out))

(defn- diagnose
  "Why the JavaScript atom refused `writes`: its own checks (limits, a map with two keys
  that write alike) as an `ex-info`, or nil when every value was as stored already."
  [group writes]
  (some (fn [[k v]]
          (when-not (identical? v absent)
            (try
              (let [size (.-length (client/encode v))]
                (when (> size values/max-value-bytes)
                  (ex-info (str "atomsync: " (pr-str k) " in " group ": the value takes " size
                                " bytes of MessagePack, over the " values/max-value-bytes "-byte limit")
                           {:atomsync/error :too-large :group group :key k})))
              (catch :default ^js e
                (ex-info (str "atomsync: " (pr-str k) " in " group ": " (.-message e))
                         {:atomsync/error :invalid-value :group group :key k} e)))))
        (array-seq writes)))

(defn- write!
  "Hands `writes` to the JavaScript atom, which installs them as its view at once and
  stores them in the background; throws, having written nothing, when it refuses them."
  [^SyncedAtom a group writes]
  (let [^js js-atom (.-js-atom a)
        installed (volatile! nil)
        reported (volatile! false)
        stored (.swap js-atom (fn [^js m]
                                (doseq [[k v] (array-seq writes)]
                                  (if (identical? v absent) (.delete m k) (.set m k v)))
                                (vreset! (.-own a) m)
                                (vreset! installed m)
                                m))]
    (vreset! (.-own a) nil)
    (vreset! (.-last-write a)
             (.then stored
                    (fn [_] (vreset! (.-write-error a) nil))
                    (fn [^js e]
                      (when-not @reported
                        ;; The storage failed: atomsync.js has put the view back as stored;
                        ;; the status says why.
                        (let [error {:code :storage :message (str group ": a write could not be stored: " (.-message e))}
                              status (.-status a)]
                          (js/console.error "atomsync:" (:message error))
                          (vreset! (.-write-error a) error)
                          (set-status! status (assoc @status :error error)))))))
    (when-not (identical? (.deref js-atom) @installed)
      ;; The JavaScript atom kept its view: every value was as stored already, or it
      ;; refused the write (and says why only in the promise): find out which now.
      (when-let [error (diagnose group writes)]
        (vreset! reported true)
        (throw error)))
    (vreset! (.-js-view a) (.deref js-atom))))

(defn- commit! [^SyncedAtom a f]
  (let [group (.-group ^js (.-js-atom a))]
    (when @(.-closed? a) (throw (ex-info (str "atomsync: " group " is closed") {:atomsync/error :closed})))
    (when-not @(.-loaded? a)
      (throw (ex-info (str "atomsync: " group " is not loaded yet: wait for (atomsync/ready? a) or (atomsync/loaded a)")
                      {:atomsync/error :not-loaded})))
    (let [old @(.-state a)
          new (f old)]
      (when-not (map? new)
        (throw (ex-info (str "atomsync: " group " holds a map from key to value, not " (pr-str new)) {:atomsync/error :not-a-map})))
      (when-let [validate (.-validator a)]
        (when-not (validate new) (throw (js/Error. "Validator rejected reference state"))))
      (when-not (identical? old new)
        (let [writes (changes group old new)]
          ;; A new map with the same values writes nothing.
          (when (pos? (.-length writes)) (write! a group writes))
          (vreset! (.-state a) new)
          (notify! a old new false)))
      new)))

(defn- merge-view
  "`state` updated from the JavaScript view `old-view` to `new-view`: only values that are
  not the very objects they were are converted."
  [group state ^js old-view ^js new-view status]
  (let [out (volatile! (transient state))
        added (volatile! 0)
        failed (volatile! nil)]
    (.forEach new-view
              (fn [v k]
                (let [before (.get old-view k)]
                  (when (undefined? before) (vswap! added inc))
                  (when-not (identical? before v)
                    (try (vswap! out assoc! k (values/->clj v))
                         (catch :default ^js e
                           (vswap! out dissoc! k)
                           (vreset! failed (str k ": " (ex-message e)))))))))
    (when (> (.-size old-view) (- (.-size new-view) @added))
      (.forEach old-view (fn [_ k] (when-not (.has new-view k) (vswap! out dissoc! k)))))
    (when-let [message @failed]
      (js/console.error "atomsync:" group "-" message)
      (set-status! status (assoc @status :error {:code :bad-value :message message})))
    (persistent! @out)))

(defn- on-view
  "The JavaScript atom's view changed: from a `swap!` of ours, or from elsewhere (the
  server, storage, another tab)."
  [^SyncedAtom a _ new-view]
  (if (identical? new-view @(.-own a))
    (vreset! (.-js-view a) new-view)
    (let [old @(.-state a)
          new (merge-view (.-group ^js (.-js-atom a)) old @(.-js-view a) new-view (.-status a))]
      (vreset! (.-js-view a) new-view)
      (when-not (identical? old new)
        (vreset! (.-state a) new)
        (notify! a old new true)))))

(def ^:private atoms
  "The ClojureScript atom of each open JavaScript atom, so that asking twice gives the
  same one, as `atomsync.js` does."
  (js/WeakMap.))

(def ^:private conn-atoms
  "The ClojureScript atoms open on each connection, closed with it."
  (js/WeakMap.))

(defn- js-resolver [resolve]
  (fn [_key local server]
    (let [local (if (identical? local client/DELETED) deleted (values/->clj local))
          current (if (identical? server client/DELETED) deleted (values/->clj server))
          answer (resolve local current)]
      (cond (identical? answer current) js/undefined
            (identical? answer deleted) client/DELETED
            :else (values/->js answer)))))

(defn synced-atom
  "The synced atom of `group` (1 to 128 characters from `A-Z a-z 0-9 _ - . :`) on the
  connection `conn`; the same atom when asked again while it is open. Options:
  - `:server` the server's sync URL (`http://host:8090/sync`) or WebSocket URL; in a
    browser, default: the page's own server
  - `:token` the bearer token, when the server has auth on
  - `:resolve` `(fn [local current] ...)` for a conflict (the server had a newer version
    of a key this client changed): gets both values (`deleted` for a deleted side) and
    returns the value to push on top of the server's; `current` lets the server win,
    `deleted` deletes. Without it, the server wins.
  - `:validator` a function of the new map that must return true for a `swap!` or
    `reset!` to happen (it is not asked about changes from elsewhere)
  - `:meta` the atom's metadata"
  ([conn group] (synced-atom conn group {}))
  ([^js conn group {:keys [server token resolve validator meta]}]
   (when (and (some? resolve) (not (fn? resolve)))
     (throw (ex-info "atomsync: :resolve must be a function of the local and current values" {:resolve resolve})))
   (let [js-options (js-obj)]
     (when server (unchecked-set js-options "server" server))
     (when token (unchecked-set js-options "token" token))
     (when resolve (unchecked-set js-options "resolver" (js-resolver resolve)))
     (let [^js js-atom (.syncedAtom conn group js-options)]
       (or (.get atoms js-atom)
           (let [view (.deref js-atom)
                 status (Status. (volatile! (status-map (.-status js-atom) nil)) (volatile! {}))
                 unwatch (volatile! nil)
                 a (SyncedAtom. js-atom (volatile! (merge-view group {} (js/Map.) view status)) (volatile! view)
                                (volatile! nil) (volatile! {}) (volatile! false) (volatile! false) (volatile! nil)
                                (volatile! (js/Promise.resolve nil)) status validator meta unwatch)
                 stop-view (.watch js-atom (fn [old new] (on-view a old new)))
                 stop-status (.watchStatus js-atom (fn [_ new] (set-status! status (status-map new @(.-write-error a)))))]
             (vreset! unwatch (fn [] (stop-view) (stop-status)))
             ;; A failed load is the user's to see, through `ready?` or `loaded`.
             (.then (.-loaded js-atom) (fn [_] (vreset! (.-loaded? a) true)) (fn [_] nil))
             (.set atoms js-atom a)
             (when-not (.has conn-atoms conn) (.set conn-atoms conn (js/Set.)))
             (.add (.get conn-atoms conn) a)
             a))))))

(defn- check-atom [a]
  (when-not (instance? SyncedAtom a)
    (throw (ex-info (str "atomsync: not a synced atom: " (pr-str a)) {:value a}))))

(defn ready?
  "A promise that resolves with `a` once its local state is loaded and its first sync
  attempt has finished: caught up with the server, or found offline or refused (then
  `(:error @(status a))` says why). Rejects when the local state cannot be loaded."
  [a]
  (check-atom a)
  (.then (.-ready ^js (.-js-atom ^SyncedAtom a)) (fn [_] a)))

(defn loaded
  "A promise that resolves with `a` once its local state is loaded: from then on it reads
  and writes, online or not."
  [a]
  (check-atom a)
  (.then (.-loaded ^js (.-js-atom ^SyncedAtom a)) (fn [_] (vreset! (.-loaded? ^SyncedAtom a) true) a)))

(defn status
  "An atom-like (deref it, watch it) of how `a` syncs:
  `{:state :online|:pending|:offline, :online? bool, :transport :ws|:http|nil,
    :pending n, :cursor seq, :ready? bool, :leader? bool, :error nil|{:code kw :message str}}`.
  `:state` is `:offline` while the server cannot be reached, `:pending` while local
  changes wait for its acknowledgement, `:online` when in sync. `:pending` counts the keys
  with such changes. `:error` is the last problem worth showing (a refused token, a
  dropped change, a failed local write), cleared when syncing resumes."
  [a]
  (check-atom a)
  (.-status ^SyncedAtom a))

(defn stored
  "A promise that resolves once every `swap!` and `reset!` of `a` so far is stored
  locally (from then on it survives a restart of the program, and is pushed when the
  server can be reached). A write that failed to be stored shows in `(:error @(status a))`
  and is undone in `@a`."
  [a]
  (check-atom a)
  @(.-last-write ^SyncedAtom a))

(defn group
  "The name of the group `a` syncs."
  [a]
  (check-atom a)
  (.-group ^js (.-js-atom ^SyncedAtom a)))

(defn pending-keys
  "The keys whose local changes the server has not acknowledged yet, as a set."
  [a]
  (check-atom a)
  (set (js/Array.from (.pendingKeys ^js (.-js-atom ^SyncedAtom a)))))

(defn- close-atom! [^SyncedAtom a]
  (when-not @(.-closed? a)
    (vreset! (.-closed? a) true)
    (@(.-unwatch a))
    (.close ^js (.-js-atom a))
    (vreset! (.-watches a) {})
    (.delete atoms (.-js-atom a))))

(defn close!
  "Closes a synced atom (it stops syncing; `@a` keeps its last value, `swap!` throws) or a
  connection (every atom open on it, then its storage). Returns a promise that resolves
  once everything is closed (a file storage's last writes done and its file released)."
  [x]
  (cond
    (instance? SyncedAtom x) (do (close-atom! x) (js/Promise.resolve nil))
    (instance? client/Connection x)
    (let [^js conn x
          ^js storage (.-storage conn)]
      (let [open-atoms (js/Array.from (or (.get conn-atoms conn) #js []))
            writes (js/Promise.all (.map open-atoms (fn [a] (stored a))))]
        (doseq [a open-atoms] (close-atom! a))
        (.delete conn-atoms conn)
        ;; The writes under way reach the storage before it closes.
        (-> writes
            (.then (fn [_]
                     (.close conn)
                     (when (fn? (.-closed storage)) (.closed storage)))))))
    :else (throw (ex-info (str "atomsync/close!: not a synced atom or a connection: " (pr-str x)) {:value x}))))
