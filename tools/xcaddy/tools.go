//go:build tools

// Package tools pins the build tools of this repository: CI builds xcaddy
// from here (go build github.com/caddyserver/xcaddy/cmd/xcaddy), because
// the module proxy refuses `go install ...@v0.4.5` for lack of a version
// list. A module of its own keeps these out of the plugin's go.mod.
package tools

import _ "github.com/caddyserver/xcaddy/cmd/xcaddy"
