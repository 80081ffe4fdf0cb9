(ns atomsync.run-tests
  "Runs every ClojureScript client test: `npm test` in client-cljs/ (test.sh runs it)."
  (:require [atomsync.values-test]
            [atomsync.atom-test]
            [atomsync.elsewhere-test]
            [atomsync.file-storage-test]
            [atomsync.flows-test]
            [atomsync.interop-test]
            [atomsync.harness :as h]
            [promesa.core :as p]))

;; A promise a timed-out test left behind must not end the run.
(.on js/process "unhandledRejection" (fn [error] (println "# unhandled rejection (after its test ended?):" (or (ex-message error) error))))

(when-not (.-WebSocket js/globalThis)
  (println "Bail out! These tests need a WebSocket: Node 22 or later, or Node 20 with NODE_OPTIONS=--experimental-websocket")
  (js/process.exit 1))

(p/let [failed (h/run-all)
        _ (h/close-shared!)]
  (set! (.-exitCode js/process) (if (pos? failed) 1 0))
  ;; Whatever a failed test left open (a socket, a timer) must not keep the run going.
  (.unref (js/setTimeout (fn []
                           (println "# something was left open after the tests; exiting")
                           (h/kill-servers!)
                           (js/process.exit (if (pos? failed) 1 0)))
                         3000)))
