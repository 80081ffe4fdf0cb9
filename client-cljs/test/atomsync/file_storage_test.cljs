(ns atomsync.file-storage-test
  "The Node file storage: what a crash leaves (a frame cut short) is dropped and the rest
  loads, one process at a time holds a file, a file of mostly replaced records is
  rewritten as a snapshot, and a file that is not a store is refused. The atoms here are
  offline (their server's port refuses connections): every write stays pending."
  (:require [atomsync.core :as atomsync]
            [atomsync.file-storage :as file-storage]
            [atomsync.harness :as h :refer [deftest* eventually is! is=]]
            [clojure.string :as string]
            ["node:fs" :as fs]
            ["node:path" :as path]
            [promesa.core :as p]))

(def ^:private nowhere
  "A sync URL nothing listens on."
  "http://127.0.0.1:9/sync")

(defn- with-file
  "Runs `(f file)` with a store file in a fresh folder, removed however it ends."
  [f]
  (let [dir (h/temp-dir "atomsync-cljs-file-")]
    (-> (p/do (f (.join path dir "app.atomsync")))
        (p/finally #(.rmSync fs dir #js {:recursive true :force true})))))

(defn- open-atom
  "A connection on the file and its atom of `group`, loaded; resolves with both."
  [file group]
  (p/let [storage (file-storage/open file)
          conn (h/client {:storage storage})
          a (atomsync/loaded (atomsync/synced-atom conn group {:server nowhere}))]
    [conn a]))

(deftest* "a file store keeps documents and pending changes; a frame cut short by a crash is dropped"
  (fn []
    (with-file
      (fn [file]
        (p/let [[conn a] (open-atom file "fs-torn")]
          (swap! a assoc "one" {:n 1} "two" #{:x})
          (swap! a assoc "three" [3])
          (p/let [_ (atomsync/stored a)
                  _ (atomsync/close! conn)
                  ;; A crash in the middle of an append: a header promising more than follows.
                  _ (.appendFileSync fs file (js/Buffer.from #js [0 0 1 0 1 2 3 4 5 6 7]))
                  [conn a] (open-atom file "fs-torn")]
            (is= {"one" {:n 1} "two" #{:x} "three" [3]} @a "everything written before the crash")
            (is= #{"one" "two" "three"} (atomsync/pending-keys a) "still pending")
            (swap! a assoc "four" 4)
            (p/let [_ (atomsync/stored a)
                    _ (atomsync/close! conn)
                    [conn a] (open-atom file "fs-torn")]
              (is= 4 (count @a) "a write after the recovery follows whole frames")
              (atomsync/close! conn))))))))

(deftest* "one process at a time: a file in use is refused, a lock left by a dead process is taken over"
  (fn []
    (with-file
      (fn [file]
        (p/let [storage (file-storage/open file)
                refused (-> (file-storage/open file) (.then (constantly nil) identity))]
          (is! (re-find #"already open in this process" (str (ex-message refused))) (str "a second open: " (ex-message refused)))
          (p/let [_ (.close storage)
                  ;; Process ids do not go this high: nobody holds the lock.
                  _ (.writeFileSync fs (str file ".lock") "4194304999")
                  storage (file-storage/open file)]
            (is= (str (.-pid js/process)) (.readFileSync fs (str file ".lock") "utf8") "the lock is ours")
            (p/let [child (h/run-process "sh" ["-c" "sleep 30 & echo $!"] {})
                    _ (.close storage)
                    _ (.writeFileSync fs (str file ".lock") child)
                    refused (-> (file-storage/open file) (.then (constantly nil) identity))]
              (js/process.kill (js/parseInt child 10))
              (is! (re-find (re-pattern (str "in use by process " child)) (str (ex-message refused)))
                   (str "a live holder: " (ex-message refused))))))))))

(deftest* "a file of mostly replaced records is rewritten as a snapshot"
  (fn []
    (with-file
      (fn [file]
        (p/let [[conn a] (open-atom file "fs-compact")
                big (string/join (repeat 30000 "x"))]
          (letfn [(write [i] (when (< i 60)
                               (swap! a assoc "doc" {:i i :pad big})
                               (p/do (atomsync/stored a) (write (inc i)))))]
            (p/let [_ (write 0)
                    ;; 1.8 MB written; past 1 MiB appended, the file is rewritten as the
                    ;; one document it holds, and grows again from there.
                    _ (eventually "a snapshot" #(< (.-size (.statSync fs file)) (+ 1048576 40000)))
                    _ (atomsync/close! conn)
                    [conn a] (open-atom file "fs-compact")]
              (is= 59 (:i (get @a "doc")) "the last value, read from the snapshot")
              (is= #{"doc"} (atomsync/pending-keys a) "still pending")
              (atomsync/close! conn))))))))

(deftest* "a file that is not an Atomsync store is refused"
  (fn []
    (with-file
      (fn [file]
        (.writeFileSync fs file "{\"not\": \"a store\"}")
        (p/let [refused (-> (file-storage/open file) (.then (constantly nil) identity))]
          (is! (re-find #"not an Atomsync store file" (str (ex-message refused))) (str (ex-message refused)))
          (is! (not (.existsSync fs (str file ".lock"))) "its lock is released"))))))
