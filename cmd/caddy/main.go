// Command caddy is a standard Caddy with the alipay sidecar and the local
// Alipay (alipay_sandbox) built in: go build ./cmd/caddy
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-alipay/caddy-alipay"
	_ "github.com/caddy-alipay/caddy-alipay/sandbox"
)

func main() {
	caddycmd.Main()
}
