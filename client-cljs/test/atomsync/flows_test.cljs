(ns atomsync.flows-test
  "The eight flows every Atomsync client passes (tests/integration/client.rs has the Rust
  client's), here with the ClojureScript client against the real server binary: two
  clients in this process, each with its own local database."
  (:require [atomsync.core :as atomsync]
            [atomsync.file-storage :as file-storage]
            [atomsync.harness :as h :refer [deftest* eventually is! is=]]
            [atomsync.values :as values]
            ["node:fs" :as fs]
            ["node:path" :as path]
            [promesa.core :as p]))

(defn- same-bytes? [x y]
  (= (h/hex (values/encode x)) (h/hex (values/encode y))))

(deftest* "flow 1: two clients writing one key converge"
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 2 (fn [ca cb]
                     (p/let [a (h/synced ca server "f1-converge")
                             b (h/synced cb server "f1-converge")]
                       (letfn [(play [round]
                                 (when (< round 5)
                                   (swap! a assoc "k" {:by "a" :round round})
                                   (swap! b assoc "k" {:by "b" :round round})
                                   (p/let [_ (eventually "one value on both"
                                                         #(and (h/in-sync? a) (h/in-sync? b) (= (get @a "k") (get @b "k"))))]
                                     (is= round (:round (get @a "k")) "the winner is of this round")
                                     (play (inc round)))))]
                         (play 0))))))))

(deftest* "flow 2: a delete propagates, and a re-create after it"
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 2 (fn [ca cb]
                     (p/let [a (h/synced ca server "f2-delete")
                             b (h/synced cb server "f2-delete")]
                       (swap! a assoc "doomed" "soon gone" "kept" 1)
                       (p/do
                         (eventually "b has both keys" #(= 2 (count @b)))
                         (swap! a dissoc "doomed")
                         (eventually "b lost the deleted key" #(not (contains? @b "doomed")))
                         (is= 1 (get @b "kept") "the other key stays")
                         (swap! b assoc "doomed" "back")
                         (eventually "a sees the re-create" #(= "back" (get @a "doomed"))))))))))

(deftest* "flow 3: an update propagates with its types"
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 2 (fn [ca cb]
                     (p/let [a (h/synced ca server "f3-update")
                             b (h/synced cb server "f3-update")
                             updated {:text "Buy oat milk"
                                      :done true
                                      :tags #{:groceries :shop/food}
                                      :id #uuid "30313233-3435-3637-3839-616263646566"
                                      :at #inst "2026-09-21T13:46:40.123Z"
                                      :at-ns (atomsync/instant "2026-09-21T13:46:40.123456789Z")
                                      :blob (js/Uint8Array. #js [0 255])}]
                       (swap! a assoc "todo:1" {:text "Buy milk" :done false})
                       (p/do
                         (eventually "b has todo:1" #(contains? @b "todo:1"))
                         (swap! a assoc "todo:1" updated)
                         (eventually "b has the update" #(same-bytes? updated (get @b "todo:1")))
                         (let [todo (get @b "todo:1")]
                           (is! (set? (:tags todo)) "a set stays a set")
                           (is= "shop" (namespace (first (filter namespace (:tags todo)))) "a keyword keeps its namespace")
                           (is! (uuid? (:id todo)) "a UUID stays a cljs.core/UUID")
                           (is! (inst? (:at todo)) "an instant with whole milliseconds is a js/Date")
                           (is= "2026-09-21T13:46:40.123456789Z" (str (:at-ns todo)) "an instant keeps its nanoseconds")
                           (is! (instance? js/Uint8Array (:blob todo)) "bytes are a Uint8Array")))))))))

(deftest* "flow 4: the store survives a client restart (file storage)"
  (fn []
    (p/let [server (h/shared-server)
            dir (h/temp-dir "atomsync-cljs-store-")
            file (.join path dir "client.atomsync")
            open-client (fn [] (p/let [storage (file-storage/open file)] (h/client {:storage storage})))
            conn (open-client)
            a (h/synced conn server "f4-persist")
            _ (swap! a (fn [m] (into m (for [i (range 10)] [(str "doc:" i) {:n i :tags #{:t}}]))))
            _ (h/wait-in-sync a)
            before @a
            cursor (:cursor @(atomsync/status a))
            _ (atomsync/close! conn)
            conn (open-client)
            a (atomsync/loaded (atomsync/synced-atom conn "f4-persist" {:server (h/sync-url server)}))]
      (is= before @a "loaded from the file, before any sync")
      (is= cursor (:cursor @(atomsync/status a)) "the cursor was kept")
      (p/do (h/wait-in-sync a)
            (is= before @a "and after syncing")
            (atomsync/close! conn)
            (.rmSync fs dir #js {:recursive true :force true})))))

(deftest* "flow 5: a fresh client pulls everything"
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 2 (fn [cw cf]
                     (p/let [writer (h/synced cw server "f5-fresh")]
                       (swap! writer (fn [m] (into m (for [i (range 30)] [(str "doc:" i) i]))))
                       (swap! writer dissoc "doc:7")
                       (p/let [_ (h/wait-in-sync writer)
                               copy (h/synced cf server "f5-fresh")]
                         (is! (:online? @(atomsync/status copy)) "online once ready")
                         (is= @writer @copy "the same map")
                         (is= 29 (count @copy) "29 documents"))))))))

(deftest* "flow 6: a batch of 50 syncs both ways"
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 2 (fn [ca cb]
                     (p/let [a (h/synced ca server "f6-batch")
                             b (h/synced cb server "f6-batch")]
                       (swap! a into (for [i (range 50)] [(str "a:" i) {:from "a" :i i}]))
                       (swap! b into (for [i (range 50)] [(str "b:" i) {:from "b" :i i}]))
                       (p/do (eventually "100 documents on both" #(= 100 (count @a) (count @b)))
                             (h/wait-in-sync a b)
                             (is= @a @b "the same map on both"))))))))

(deftest* "flow 7: pending changes survive a server restart"
  (fn []
    (p/let [server (h/start-server)]
      (-> (h/closing 2 (fn [ca cb]
                         (p/let [a (h/synced ca server "f7-restart")
                                 b (h/synced cb server "f7-restart")
                                 _ (h/wait-in-sync a b)
                                 _ (h/stop! server)
                                 _ (eventually "a offline" #(= :offline (:state @(atomsync/status a))))]
                           (doseq [i (range 5)] (swap! a assoc (str "offline:" i) i))
                           (is= 5 (count @a) "local writes apply at once")
                           (p/let [_ (eventually "5 pending" #(= 5 (:pending @(atomsync/status a))))
                                   _ (h/restart! server)
                                   _ (eventually "b has the offline writes" #(= 5 (count @b)))
                                   _ (h/wait-in-sync a)]
                             (is= @a @b "the same map on both")))))
          (p/finally #(h/close-server! server))))))

(deftest* "flow 8: groups are isolated, also sharing a connection"
  (fn []
    (p/let [server (h/shared-server)]
      (h/closing 2 (fn [ca cb]
                     (p/let [one-a (h/synced ca server "f8-one")
                             two-a (h/synced ca server "f8-two")
                             one-b (h/synced cb server "f8-one")
                             two-b (h/synced cb server "f8-two")]
                       (swap! one-a assoc "shared-key" "in one")
                       (swap! two-b assoc "shared-key" "in two" "only-two" true)
                       (p/do (eventually "each group converged"
                                         #(and (= "in one" (get @one-b "shared-key"))
                                               (= "in two" (get @two-a "shared-key"))
                                               (contains? @two-a "only-two")))
                             (h/wait-in-sync one-a one-b two-a two-b)
                             (is= [1 1 2 2] (mapv count [@one-a @one-b @two-a @two-b]) "each group has its own keys")
                             (is= "in one" (get @one-a "shared-key") "group one's value")
                             (is= "in two" (get @two-b "shared-key") "group two's value"))))))))
