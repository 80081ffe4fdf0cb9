(ns atomsync.harness
  "What the ClojureScript client's tests share: a small runner (each test a function
  returning a promise, run one at a time with a time limit, reported as TAP lines whose
  `# pass` and `# fail` counts test.sh adds up), assertions, bounded waits, the real
  `atomsync-server` binary on a free loopback port with its database in a temporary
  folder, and clients with fast timing."
  (:require ["node:child_process" :as cp]
            ["node:fs" :as fs]
            ["node:net" :as net]
            ["node:os" :as os]
            ["node:path" :as path]
            [atomsync.core :as atomsync]
            [clojure.string :as string]
            [promesa.core :as p]))

(def repo
  "The repository's root: client-cljs/test/atomsync/ is three folders below it."
  (.resolve path (.dirname path *file*) ".." ".." ".."))

(def server-bin
  (or (.. js/process -env -ATOMSYNC_SERVER_BIN) (.join path repo "target" "debug" "atomsync-server")))

(def interop-bin
  (or (.. js/process -env -ATOMSYNC_INTEROP_BIN) (.join path repo "target" "debug" "examples" "interop")))

;; ---------------------------------------------------------------------------------------
;; The runner

(defonce ^:private registry (atom []))

(defn deftest*
  "Registers a test: `f` returns a promise (or a value); it fails by throwing or rejecting."
  ([test-name f] (deftest* test-name {} f))
  ([test-name {:keys [timeout-ms] :or {timeout-ms 30000}} f]
   (swap! registry conj {:name test-name :f f :timeout-ms timeout-ms})))

(defn- with-timeout [promise ms test-name]
  (let [timer (volatile! nil)]
    (-> (js/Promise.race
         #js [promise
              (js/Promise. (fn [_ reject]
                             (vreset! timer (js/setTimeout #(reject (js/Error. (str test-name ": timed out after " ms " ms"))) ms))))])
        (.finally #(js/clearTimeout @timer)))))

(defn run-all
  "Runs every registered test in order; resolves with the number that failed."
  []
  (let [only (.. js/process -env -ATOMSYNC_TEST_ONLY)
        tests (cond->> @registry only (filterv #(string/includes? (:name %) only)))]
    (println (str "TAP version 13\n1.." (count tests)))
    ;; Plain recursion over promises: promesa's p/loop does not pass a rejection on
    ;; under nbb when loops nest.
    (letfn [(run [i failed]
              (if (= i (count tests))
                (do (println (str "# tests " (count tests) "\n# pass " (- (count tests) failed) "\n# fail " failed))
                    failed)
                (let [{test-name :name f :f timeout-ms :timeout-ms} (nth tests i)
                      started (js/Date.now)]
                  (-> (with-timeout (.then (js/Promise.resolve nil) (fn [_] (f))) timeout-ms test-name)
                      (.then (constantly nil) identity)
                      (.then (fn [error]
                               (let [ms (- (js/Date.now) started)]
                                 (if error
                                   (do (println (str "not ok " (inc i) " - " test-name " (" ms " ms)"))
                                       (println (string/replace (str "  " (or (ex-message error) error)
                                                                     (when-let [data (not-empty (ex-data error))]
                                                                       (when-not (= :sci/error (:type data)) (str "\n  " (pr-str data)))))
                                                                "\n" "\n  ")))
                                   (println (str "ok " (inc i) " - " test-name " (" ms " ms)")))
                                 (run (inc i) (if error (inc failed) failed)))))))))]
      (run 0 0))))

;; ---------------------------------------------------------------------------------------
;; Assertions

(defn is!
  "Fails the test with `what` unless `ok`."
  [ok what]
  (when-not ok (throw (ex-info (str "failed: " what) {}))))

(defn is=
  [expected actual what]
  (when-not (= expected actual)
    (throw (ex-info (str "failed: " what "\n  expected: " (pr-str expected) "\n  actual:   " (pr-str actual)) {}))))

(defn thrown
  "The error `f` throws (failing the test when it throws none)."
  [f what]
  (let [error (try (f) nil (catch :default e e))]
    (is! (some? error) (str what ": expected an error"))
    error))

(defn eventually
  "Resolves once `(check)` is truthy (with its value), polling every 20 ms; rejects after
  `timeout-ms` naming `what`."
  ([what check] (eventually what check 20000))
  ([what check timeout-ms]
   (let [deadline (+ (js/Date.now) timeout-ms)]
     (letfn [(attempt []
               (.then (.then (js/Promise.resolve nil) (fn [_] (check)))
                      (fn [value]
                        (cond value value
                              (> (js/Date.now) deadline) (throw (ex-info (str "timed out after " timeout-ms " ms waiting for " what) {}))
                              :else (.then (p/delay 20) (fn [_] (attempt)))))))]
       (attempt)))))

(defn hex [bytes]
  (string/join (map #(.padStart (.toString % 16) 2 "0") (js/Array.from bytes))))

;; ---------------------------------------------------------------------------------------
;; The server

(defn- free-port []
  (js/Promise.
   (fn [resolve reject]
     (let [probe (.createServer net)]
       (.on probe "error" reject)
       (.listen probe 0 "127.0.0.1" (fn [] (let [port (.-port (.address probe))] (.close probe #(resolve port)))))))))

(defn temp-dir [prefix]
  (.mkdtempSync fs (.join path (.tmpdir os) prefix)))

(defn- healthy? [origin]
  (-> (js/fetch (str origin "/healthz"))
      (.then #(.-ok %))
      (.catch (constantly false))))

(defonce ^:private children (js/Set.))

(defn kill-servers!
  "Kills every server the tests started that still runs."
  []
  (doseq [child (js/Array.from children)] (.kill child "SIGKILL")))

;; A run that ends early or is interrupted leaves no server behind.
(defonce ^:private _exit-hooks
  (do (.on js/process "exit" kill-servers!)
      (doseq [signal ["SIGINT" "SIGTERM"]]
        (.on js/process signal (fn [] (kill-servers!) (js/process.exit 130))))))

(defn- spawn-server! [server]
  (let [{:keys [args log]} @server
        child (.spawn cp server-bin (clj->js args) #js {:stdio #js ["ignore" "pipe" "pipe"]})
        keep! (fn [chunk] (swap! log #(let [s (str % chunk)] (subs s (max 0 (- (count s) 20000))))))]
    (.on (.-stdout child) "data" keep!)
    (.on (.-stderr child) "data" keep!)
    (.add children child)
    (.once child "exit" #(.delete children child))
    (swap! server assoc :process child)
    (eventually "the server to answer /healthz"
                (fn []
                  (when (some? (.-exitCode child))
                    (throw (ex-info (str "atomsync-server exited with " (.-exitCode child) ":\n" @log) {})))
                  (healthy? (:origin @server))))))

(defn start-server
  "The real server binary on a free port with a fresh database; resolves with a handle
  (an atom) for `stop!`, `restart!`, `close!`, `url`."
  []
  (p/let [port (free-port)
          dir (temp-dir "atomsync-cljs-")
          server (atom {:dir dir :origin (str "http://127.0.0.1:" port) :log (atom "")
                        :args ["--bind" (str "127.0.0.1:" port) "--db" (.join path dir "atomsync.db")
                               "--durability" "normal" "--log" "warn"]})]
    (spawn-server! server)
    server))

(defn sync-url [server] (str (:origin @server) "/sync"))

(defn stop!
  "Stops the server (SIGTERM, SIGKILL after 5 s) and waits for it to exit."
  [server]
  (let [child (:process @server)]
    (if (or (nil? child) (some? (.-exitCode child)) (some? (.-signalCode child)))
      (js/Promise.resolve nil)
      (js/Promise.
       (fn [resolve]
         (let [timer (js/setTimeout #(.kill child "SIGKILL") 5000)]
           (.once child "exit" (fn [] (js/clearTimeout timer) (swap! server dissoc :process) (resolve nil)))
           (.kill child "SIGTERM")))))))

(defn restart!
  "Starts the stopped server again on the same port and database."
  [server]
  (spawn-server! server))

(defn close-server! [server]
  (p/do (stop! server)
        (.rmSync fs (:dir @server) #js {:recursive true :force true})))

(defn pull
  "The server's documents of `group`: `:json` the tagged JSON text of the pull, or the
  MessagePack bytes."
  ([server group] (pull server group :msgpack))
  ([server group encoding]
   (p/let [response (js/fetch (str (:origin @server) "/sync?group=" group "&since=0")
                              #js {:headers #js {:accept (if (= encoding :json) "application/json" "application/msgpack")}})]
     (if (= encoding :json) (.text response) (p/let [body (.arrayBuffer response)] (js/Uint8Array. body))))))

;; ---------------------------------------------------------------------------------------
;; Clients

(def fast-timing
  "Reconnects and polls quickly: a server restart is noticed in well under a second."
  {:backoffBaseMs 50 :backoffMaxMs 400 :httpPollMs 200 :connectTimeoutMs 3000 :requestTimeoutMs 5000})

(defonce ^:private client-count (atom 0))

(defn client
  "A connection of its own (a new database name, in memory unless `options` say
  otherwise) with fast timing."
  ([] (client {}))
  ([options]
   (atomsync/open (str "client-" (swap! client-count inc)) (merge {:timing fast-timing} options))))

(defn synced
  "The atom of `group` on `conn` syncing with `server`, once ready."
  ([conn server group] (synced conn server group {}))
  ([conn server group options]
   (atomsync/ready? (atomsync/synced-atom conn group (merge {:server (sync-url server)} options)))))

(defn in-sync?
  "Whether `a` is connected over the WebSocket with nothing pending."
  [a]
  (let [{:keys [state transport]} @(atomsync/status a)]
    (and (= state :online) (= transport :ws))))

(defn wait-in-sync [& atoms]
  (eventually (str "in sync: " (string/join ", " (map atomsync/group atoms)))
              #(every? in-sync? atoms)))

;; ---------------------------------------------------------------------------------------
;; Other processes

(defn run-process
  "Runs `bin` with `args` (options: `:cwd`, `:env`); resolves with its standard output,
  rejects when it exits with an error or outlives `timeout-ms`."
  [bin args {:keys [cwd env timeout-ms] :or {timeout-ms 60000}}]
  (js/Promise.
   (fn [resolve reject]
     (let [child (.spawn cp bin (clj->js args) (clj->js (cond-> {:stdio ["ignore" "pipe" "pipe"]}
                                                          cwd (assoc :cwd cwd)
                                                          env (assoc :env (merge (js->clj (.-env js/process)) env)))))
           out (atom "")
           err (atom "")
           timer (js/setTimeout #(.kill child "SIGKILL") timeout-ms)]
       (.on (.-stdout child) "data" #(swap! out str %))
       (.on (.-stderr child) "data" #(swap! err str %))
       (.once child "exit"
              (fn [code signal]
                (js/clearTimeout timer)
                (if (= code 0)
                  (resolve (string/trim @out))
                  (reject (ex-info (str bin " exited with " (or code signal) ":\n" @err @out) {})))))))))

(defn rust-interop
  "Runs the Rust client's interop example (client-rs/examples/interop.rs) with a fresh
  local database: `write` stores its every-type value under `k`, `read` prints the key's
  value as tagged JSON."
  [server command group k]
  (let [dir (temp-dir "atomsync-rs-")]
    (-> (run-process interop-bin [command (sync-url server) group k (.join path dir "client.db")] {})
        (p/finally #(.rmSync fs dir #js {:recursive true :force true})))))

(defonce ^:private shared (atom nil))

(defn shared-server
  "One server for the tests that do not need their own (each uses its own groups)."
  []
  (or @shared (reset! shared (start-server))))

(defn close-shared! []
  (if-let [server @shared]
    (p/let [s server] (reset! shared nil) (close-server! s))
    (js/Promise.resolve nil)))

(defn closing
  "Runs `(f conns...)` with `n` fresh clients, closing them however it ends."
  [n f]
  (p/let [conns (p/all (repeatedly n client))]
    (-> (p/do (apply f conns))
        (p/finally (fn [] (doseq [c conns] (atomsync/close! c)))))))
