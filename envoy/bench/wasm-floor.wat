;; keyhop load bench: the floor under any proxy-wasm filter, to tell Envoy's Wasm cost from
;; keyhop's own. A hand-written module, nothing in it computes anything. Its plugin
;; configuration picks what it does per request:
;;   "noop"      every callback returns Continue at once: the cost of a Wasm filter being there
;;   "skeleton"  keyhop's host interaction without the checks: copy all request headers into
;;               the VM, pause until the whole body is buffered, copy the body in, continue
;; tests/src/bin/keyhop-bench.rs compiles it (the `wat` crate) into the run directory.
(module
  (import "env" "proxy_get_header_map_pairs" (func $header_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 3)
  ;; 1 when configured as "skeleton"
  (global $skeleton (mut i32) (i32.const 0))

  (func (export "proxy_abi_version_0_2_1"))

  ;; Every copy the host makes lands in one scratch area (page 1 and 2): the module keeps
  ;; nothing between calls, and the bench's headers and body are far smaller than 128 KiB.
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (i32.const 65536))

  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))

  ;; "skeleton" is the longer of the two configurations.
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (global.set $skeleton (i32.gt_u (local.get $size) (i32.const 6)))
    (i32.const 1))

  (func (export "proxy_on_context_create") (param i32 i32))

  ;; Headers: in "skeleton", copy them all in (map type 0: request headers; the host writes the
  ;; address and size at 0 and 4), then stop iteration (1) unless the request has no body.
  (func (export "proxy_on_request_headers") (param $context i32) (param $headers i32) (param $end i32) (result i32)
    (if (i32.eqz (global.get $skeleton)) (then (return (i32.const 0))))
    (drop (call $header_pairs (i32.const 0) (i32.const 0) (i32.const 4)))
    (if (result i32) (local.get $end) (then (i32.const 0)) (else (i32.const 1))))

  ;; Body: in "skeleton", ask Envoy to buffer (1) until the end, then copy it in (buffer type 0:
  ;; request body) and continue.
  (func (export "proxy_on_request_body") (param $context i32) (param $size i32) (param $end i32) (result i32)
    (if (i32.eqz (global.get $skeleton)) (then (return (i32.const 0))))
    (if (i32.eqz (local.get $end)) (then (return (i32.const 1))))
    (drop (call $buffer_bytes (i32.const 0) (i32.const 0) (local.get $size) (i32.const 8) (i32.const 12)))
    (i32.const 0))

  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))
