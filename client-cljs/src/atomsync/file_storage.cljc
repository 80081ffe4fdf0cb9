(ns atomsync.file-storage
  "A storage for Node that keeps a connection's state in one file, so that it survives a
  restart of the process (Node has no IndexedDB, and `atomsync.js` otherwise keeps the
  state in memory):

  ```clojure
  (-> (file-storage/open \"my-app.atomsync\")
      (.then #(atomsync/open \"my-app\" {:storage %})))
  ```

  The state lives in memory (`atomsync.js`'s `MemoryStorage`, with its transactions) and
  every transaction that writes is appended to the file as one frame (length, checksum,
  MessagePack of the records written) before it counts as done; a local write
  (`swap!`) is also flushed to the disk (fdatasync) first, as IndexedDB's strict
  durability does. Opening replays the file; a frame cut short by a crash is dropped,
  with everything after it. When the file holds much more than the state (replaced and
  deleted records), it is rewritten as a snapshot (to a temporary file, then renamed).

  One process at a time: `open` takes a lock file (`FILE.lock`, holding the process id)
  and refuses a file that a live process holds. Node only: this namespace requires `fs`."
  (:require ["crypto" :as crypto]
            ["fs" :as fs]
            ["fs/promises" :as fsp]
            ["path" :as path]
            [#?(:org.babashka/nbb "./../../../client-js/atomsync.js"
                :cljs "atomsync-client-js") :as client]))

(def ^:private magic (.encode (js/TextEncoder.) "atomsync-store 1\n"))

(def ^:private header-bytes
  "A frame's header: the payload's length and its checksum, 4 bytes each, big-endian."
  8)

(def ^:private frame-target-bytes
  "A snapshot is cut into frames of about this size, so none must be read whole at once."
  (* 4 1024 1024))

(def ^:private compact-min-bytes
  "Below this many bytes appended since the last snapshot, the file is left alone."
  (* 1024 1024))

(def ^:private open-files
  "The files open in this process: a second `open` of one of them is refused."
  (js/Set.))

(defn- checksum
  "The first 4 bytes of the payload's SHA-256, as an unsigned integer: catches a frame
  whose bytes are not all the ones written (native code, unlike a checksum in ClojureScript
  interpreted by nbb)."
  [payload]
  (.readUInt32BE (-> (.createHash crypto "sha256") (.update payload) (.digest)) 0))

(defn- frame
  "One frame: header, then `ops` (a JS array) in MessagePack."
  [ops]
  (let [payload (client/encode ops)
        ^js out (js/Buffer.alloc (+ header-bytes (.-length payload)))]
    (.writeUInt32BE out (.-length payload) 0)
    (.writeUInt32BE out (checksum payload) 4)
    (.set out payload header-bytes)
    out))

(defn- read-frames
  "The ops of every whole frame of `buf` (after the magic) and where the last whole frame
  ends. A frame that is cut short or whose checksum is wrong ends the log: it is what a
  crash in the middle of an append leaves."
  [^js buf]
  (let [ops #js []]
    (loop [pos (.-length magic)]
      (let [payload-at (+ pos header-bytes)
            size (when (<= payload-at (.-length buf)) (.readUInt32BE buf pos))
            end (when size (+ payload-at size))]
        (if (and end (<= end (.-length buf))
                 (let [payload (.subarray buf payload-at end)]
                   (and (== (checksum payload) (.readUInt32BE buf (+ pos 4)))
                        (let [decoded (try (client/decode payload) (catch :default _ nil))]
                          (when (array? decoded)
                            (.forEach decoded (fn [op] (.push ops op)))
                            true)))))
          (recur end)
          {:ops ops :end pos})))))

(defn- plain
  "A record as a Map of its defined fields (`encode` refuses undefined)."
  [record]
  (let [m (js/Map.)]
    (doseq [k (js-keys record)]
      (let [v (unchecked-get record k)]
        (when-not (undefined? v) (.set m k v))))
    m))

(defn- field
  "A field of a record: a Map as recorded, a plain object as read back from the file."
  [^js record k]
  (if (instance? js/Map record) (.get record k) (unchecked-get record k)))

(defn- op-group [op]
  (let [what (aget op 0)]
    (if (or (= what "doc") (= what "pend")) (field (aget op 1) "group") (aget op 1))))

(defn- apply-op! [^js tx op]
  (case (aget op 0)
    "meta" (.putMeta tx (aget op 1) (aget op 2))
    "doc" (.putDoc tx (aget op 1))
    "deldoc" (.deleteDoc tx (aget op 1) (aget op 2))
    "clear" (.clearDocs tx (aget op 1))
    "pend" (.putPending tx (aget op 1))
    "delpend" (.deletePending tx (aget op 1) (aget op 2))
    (throw (ex-info (str "atomsync: unknown record kind " (pr-str (aget op 0)) " in the store file") {:op op}))))

(defn- recording
  "`tx`, with every write also pushed onto `ops`."
  [^js tx ops]
  (let [record! (fn [& op] (.push ops (into-array op)))]
    (js-obj
     "getMeta" (fn [group] (.getMeta tx group))
     "putMeta" (fn [group meta] (record! "meta" group (plain meta)) (.putMeta tx group meta))
     "getDoc" (fn [group k] (.getDoc tx group k))
     "allDocs" (fn [group] (.allDocs tx group))
     "countDocs" (fn [group] (.countDocs tx group))
     "putDoc" (fn [doc] (record! "doc" (plain doc)) (.putDoc tx doc))
     "deleteDoc" (fn [group k] (record! "deldoc" group k) (.deleteDoc tx group k))
     "clearDocs" (fn [group] (record! "clear" group) (.clearDocs tx group))
     "getPending" (fn [group k] (.getPending tx group k))
     "allPending" (fn [group] (.allPending tx group))
     "putPending" (fn [change] (record! "pend" (plain change)) (.putPending tx change))
     "deletePending" (fn [group k] (record! "delpend" group k) (.deletePending tx group k)))))

;; ---------------------------------------------------------------------------------------
;; The lock

(defn- alive? [pid]
  (try (.kill js/process pid 0) true
       (catch :default ^js e (= "EPERM" (.-code e)))))

(defn- lock!
  "Takes `file`'s lock for this process, or throws saying who holds it."
  [file]
  (when (.has open-files file)
    (throw (ex-info (str "atomsync: " file " is already open in this process") {:atomsync/error :locked :file file})))
  (let [lock-file (str file ".lock")]
    (loop [attempt 0]
      (let [taken (try (let [fd (.openSync fs lock-file "wx")]
                         (.writeSync fs fd (str (.-pid js/process)))
                         (.closeSync fs fd)
                         true)
                       (catch :default ^js e
                         (when-not (= "EEXIST" (.-code e)) (throw e))
                         false))]
        (when-not taken
          (let [holder (js/parseInt (try (.readFileSync fs lock-file "utf8") (catch :default _ "")) 10)]
            (when (and (< attempt 3) (or (js/isNaN holder) (not (alive? holder))))
              ;; Left by a process that is gone (or cut short while written): take it over.
              (try (.unlinkSync fs lock-file) (catch :default _ nil)))
            (when (or (>= attempt 3) (and (not (js/isNaN holder)) (alive? holder)))
              (throw (ex-info (str "atomsync: " file " is in use by process " holder " (its lock file " lock-file
                                   "); one process at a time can open a store file")
                              {:atomsync/error :locked :file file :pid holder})))))
        (if taken
          (.add open-files file)
          (recur (inc attempt)))))))

(defn- unlock! [file]
  (.delete open-files file)
  (try (.unlinkSync fs (str file ".lock")) (catch :default _ nil)))

;; ---------------------------------------------------------------------------------------
;; Appending and compacting

(defn- sync-dir!
  "Makes a rename or a new file in the file's folder durable."
  [file]
  (-> (.open fsp (.dirname path file) "r")
      (.then (fn [^js dir] (-> (.sync dir) (.finally #(.close dir)))))))

(defn- append!
  "Appends one transaction's frame (skipped when a snapshot taken since holds it)."
  [st seq-no ops durable?]
  (if (<= seq-no (:snapshot-seq @st))
    (js/Promise.resolve nil)
    (let [bytes (frame ops)
          ^js handle (:handle @st)]
      (-> (.write handle bytes)
          (.then #(when durable? (.datasync handle)))
          (.then #(vswap! st update :appended + (.-length bytes)))))))

(defn- snapshot-frames
  "The state of every group, as frames of about `frame-target-bytes`."
  [^js tx groups]
  (-> (js/Promise.all
       (to-array
        (for [group groups]
          (-> (js/Promise.all #js [(.getMeta tx group) (.allDocs tx group) (.allPending tx group)])
             (.then (fn [[meta docs pending]]
                      (concat (when meta [#js ["meta" group (plain meta)]])
                              (map (fn [doc] #js ["doc" (plain doc)]) docs)
                              (map (fn [change] #js ["pend" (plain change)]) pending))))))))
      (.then (fn [per-group]
               (loop [ops (apply concat per-group) batch #js [] size 0 frames #js []]
                 (if-let [op (first ops)]
                   (let [record (aget op 1)
                         op-size (+ 64 (or (when (instance? js/Map record) (some-> (.get record "bytes") .-length)) 0))]
                     (if (and (pos? (.-length batch)) (> (+ size op-size) frame-target-bytes))
                       (recur ops #js [] 0 (doto frames (.push (frame batch))))
                       (recur (rest ops) (doto batch (.push op)) (+ size op-size) frames)))
                   (cond-> frames (pos? (.-length batch)) (doto (.push (frame batch))))))))))

(defn- compact!
  "Rewrites the file as a snapshot of the state: to `FILE.tmp`, flushed, then renamed
  over the file. Transactions committed before the snapshot was read are in it, so their
  appends (queued behind this) are skipped."
  [st]
  (let [{:keys [file ^js memory groups]} @st
        tmp (str file ".tmp")]
    (-> (.transaction memory "readonly"
                      (fn [tx]
                        (let [at (:committed @st)]
                          (.then (snapshot-frames tx (vec groups)) (fn [frames] #js [at frames])))))
        (.then (fn [[at frames]]
                 (-> (.open fsp tmp "w")
                     (.then (fn [^js out]
                              (-> (reduce (fn [p f] (.then p #(.write out f))) (.write out magic) frames)
                                  (.then #(.datasync out))
                                  (.finally #(.close out)))))
                     (.then #(.close ^js (:handle @st)))
                     (.then #(.rename fsp tmp file))
                     (.then #(sync-dir! file))
                     (.then #(.open fsp file "a"))
                     (.then (fn [handle]
                              (vswap! st assoc :handle handle :snapshot-seq at :appended 0
                                      :snapshot-bytes (reduce + (.-length magic) (map #(.-length %) frames)))))))))))

(defn- enqueue!
  "Runs `job` after every earlier append or snapshot. A failure stops the store: nothing
  after it could be trusted to reach the file, so every later write is refused."
  [st job]
  (let [run (-> (:chain @st)
                (.then (fn [_]
                         (when-let [e (:broken @st)] (throw e))
                         (job)))
                (.catch (fn [^js e]
                          (let [broken (or (:broken @st)
                                           (ex-info (str "atomsync: writing " (:file @st) " failed, so the store accepts no more writes: "
                                                         (.-message e)) {:atomsync/error :storage :file (:file @st)} e))]
                            (vswap! st assoc :broken broken)
                            (throw broken)))))]
    (vswap! st assoc :chain (.catch run (fn [_] nil)))
    run))

(defn- maybe-compact! [st]
  (let [{:keys [appended snapshot-bytes compacting?]} @st]
    (when (and (not compacting?) (> appended (max compact-min-bytes snapshot-bytes)))
      (vswap! st assoc :compacting? true)
      (.finally (enqueue! st #(compact! st)) #(vswap! st assoc :compacting? false)))))

(defn- transaction [st mode body options]
  (let [^js memory (:memory @st)]
    (cond
      (:closing @st) (js/Promise.reject (js/Error. (str "atomsync: " (:file @st) " is closed")))
      (not= mode "readwrite") (.transaction memory mode body)
      (:broken @st) (js/Promise.reject (:broken @st))
      :else
      (let [ops #js []
            durable? (= "strict" (some-> ^js options .-durability))
            ^js inflight (:inflight @st)
            done (-> (.transaction memory mode (fn [tx] (body (recording tx ops))))
                     ;; This runs before the next transaction starts: appends are queued
                     ;; in the order the transactions committed.
                     (.then (fn [result]
                              (if (zero? (.-length ops))
                                result
                                (let [seq-no (:committed (vswap! st update :committed inc))]
                                  (doseq [op ops] (vswap! st update :groups conj (op-group op)))
                                  (let [appended (enqueue! st #(append! st seq-no ops durable?))]
                                    (maybe-compact! st)
                                    (.then appended (fn [_] result))))))))]
        (.add inflight done)
        (.finally done #(.delete inflight done))))))

(defn- close
  "Closes the file once the transactions under way are written."
  [st]
  (or (:closing @st)
      (let [closing (-> (js/Promise.allSettled (js/Array.from (:inflight @st)))
                        (.then #(:chain @st))
                        (.then #(.close ^js (:handle @st)))
                        (.finally #(unlock! (:file @st))))]
        (vswap! st assoc :closing closing)
        closing)))

;; ---------------------------------------------------------------------------------------
;; Opening

(defn- replay!
  "Loads `ops` into `memory` in one transaction; resolves with how many records the
  groups now hold (to judge how much of the file is dead)."
  [^js memory ops groups]
  (-> (.transaction memory "readwrite" (fn [tx] (.forEach ops #(apply-op! tx %)) (js/Promise.resolve nil)))
      (.then #(.transaction memory "readonly"
                            (fn [^js tx]
                              (-> (js/Promise.all
                                   (to-array
                                    (for [group groups]
                                      (js/Promise.all #js [(.countDocs tx group) (.allPending tx group)]))))
                                  (.then (fn [counts]
                                           (reduce (fn [n [docs pending]] (+ n docs (.-length pending) 1)) 0 counts)))))))))

(defn open
  "A promise of the storage kept in `file` (created if missing), to pass to
  `atomsync.core/open` as `:storage`. Rejects when another live process (or this one)
  has the file open, or when it is not an Atomsync store file."
  [file]
  (js/Promise.
   (fn [resolve reject]
     (try
       (let [file (.resolve path file)
             _ (lock! file)
             existing (when (.existsSync fs file) (.readFileSync fs file))]
         (try
           (when (and existing (pos? (.-length existing))
                      (not (and (>= (.-length existing) (.-length magic))
                                (.equals (.subarray existing 0 (.-length magic)) (js/Buffer.from magic)))))
             (throw (ex-info (str "atomsync: " file " is not an Atomsync store file") {:atomsync/error :not-a-store :file file})))
           (let [{:keys [ops end]} (if (and existing (pos? (.-length existing))) (read-frames existing) {:ops #js [] :end 0})
                 fresh? (zero? end)
                 groups (into #{} (map op-group) ops)
                 memory (client/MemoryStorage.)
                 st (volatile! {:file file :memory memory :groups groups :committed 0 :snapshot-seq 0
                                :appended 0 :snapshot-bytes end :chain (js/Promise.resolve nil) :inflight (js/Set.)})]
             (when (and existing (not fresh?) (< end (.-length existing)))
               ;; The tail a crash left: gone, so that later frames follow whole ones.
               (.truncateSync fs file end))
             (-> (replay! memory ops groups)
                 (.then (fn [live-records]
                          (-> (if fresh?
                                (-> (.writeFile fsp file magic) (.then #(sync-dir! file)))
                                (js/Promise.resolve nil))
                              (.then #(.open fsp file "a"))
                              (.then (fn [handle]
                                       (vswap! st assoc :handle handle)
                                       ;; Mostly dead records: start from a snapshot.
                                       (when (and (> end compact-min-bytes) (> (.-length ops) (* 2 live-records)))
                                         (vswap! st assoc :compacting? true)
                                         (.finally (enqueue! st #(compact! st)) #(vswap! st assoc :compacting? false)))
                                       (resolve (js-obj "file" file
                                                        "transaction" (fn [mode body options] (transaction st mode body options))
                                                        "close" (fn [] (close st))
                                                        "closed" (fn [] (or (:closing @st) (js/Promise.resolve nil))))))))))
                 (.catch (fn [e] (unlock! file) (reject e)))))
           (catch :default ^js e (unlock! file) (throw e))))
       (catch :default ^js e (reject e))))))
