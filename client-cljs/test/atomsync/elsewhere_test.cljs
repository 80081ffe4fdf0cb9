(ns atomsync.elsewhere-test
  "The library loads when a script in any folder requires it: it finds atomsync.js from
  its own files, not from the working directory. A script in a temporary folder, run
  there by nbb with client-cljs/src on its classpath, opens a connection with no options
  (in memory, as Node has no IndexedDB) and syncs a value."
  (:require [atomsync.harness :as h :refer [deftest* is=]]
            ["node:fs" :as fs]
            ["node:path" :as path]
            [promesa.core :as p]))

(def ^:private script
  "(ns elsewhere (:require [atomsync.core :as atomsync]))
(-> (atomsync/open \"elsewhere\")
    (.then (fn [conn]
             (let [a (atomsync/synced-atom conn \"elsewhere\" {:server (first *command-line-args*)})
                   acknowledged (fn [] (js/Promise. (fn [resolve]
                                                      (add-watch (atomsync/status a) :synced
                                                                 (fn [_ _ _ s] (when (= :online (:state s)) (resolve nil)))))))]
               (-> (atomsync/ready? a)
                   (.then (fn [_] (swap! a assoc \"from\" {:script :elsewhere :tags #{:a}}) (acknowledged)))
                   (.then (fn [_] (prn @a) (atomsync/close! conn))))))))
")

(deftest* "a script in another folder requires the library, which finds atomsync.js itself"
  {:timeout-ms 60000}
  (fn []
    (p/let [server (h/shared-server)
            dir (h/temp-dir "atomsync-cljs-elsewhere-")
            file (.join path dir "elsewhere.cljs")
            _ (.writeFileSync fs file script)
            out (-> (h/run-process "node" [(.join path h/repo "client-cljs" "node_modules" "nbb" "cli.js")
                                           "--classpath" (.join path h/repo "client-cljs" "src")
                                           file (h/sync-url server)]
                                   {:cwd dir})
                    (p/finally #(.rmSync fs dir #js {:recursive true :force true})))
            json (h/pull server "elsewhere" :json)]
      (is= "{\"from\" {:script :elsewhere, :tags #{:a}}}" out "the script's atom")
      (is= true (boolean (re-find #"\"key\":\"from\"" json)) "and the server has it"))))
