(ns atomsync.run-tests
  "Runs every ClojureScript client test: `npm test` in client-cljs/ (test.sh runs it)."
  (:require [atomsync.flows-test]
            [atomsync.harness :as h]
            [promesa.core :as p]))

(p/let [failed (h/run-all)
        _ (h/close-shared!)]
  (set! (.-exitCode js/process) (if (pos? failed) 1 0)))
