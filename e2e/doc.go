// Package e2e holds the end-to-end tests of caddy-alipay: a Caddy built with
// xcaddy runs the alipay sidecar in front of the demo shops of ../examples
// and the alipay_sandbox gateway beside it, and a headless Chromium buys
// things in the shops; Alipay's official Node.js SDK checks that the sandbox
// speaks Alipay's dialect. See README.md. The tests are in the _test.go
// files; this package has no code of its own.
package e2e
