// Package caddyconf is the Caddy configuration glue that the alipay and
// alipay_sandbox modules share: the Caddyfile block parser, errors that
// name a setting, and where a handler sits in its server's routes.
package caddyconf

import (
	"fmt"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// SettingError names the setting that is wrong, as it is spelled in both
// the Caddyfile and JSON.
func SettingError(setting string, err error) error {
	return fmt.Errorf("%s: %w", setting, err)
}

// UnmarshalBlock parses a directive with no inline arguments and a block
// of subdirectives, each given at most once: the string settings take
// exactly one argument, stored as it is; those in many get all their
// arguments. Anything else is an error, never ignored.
func UnmarshalBlock(d *caddyfile.Dispenser, settings []StringSetting, many map[string]func(args []string) error) error {
	one := make(map[string]*string, len(settings))
	for _, s := range settings {
		one[s.Name] = s.Field
	}
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] {
			return d.Errf("subdirective %q given more than once", name)
		}
		seen[name] = true
		args := d.RemainingArgs()
		if dst, ok := one[name]; ok {
			if len(args) != 1 {
				return d.Errf("%s takes exactly one argument%s", name, noneGiven(args))
			}
			*dst = args[0]
			continue
		}
		f, ok := many[name]
		if !ok {
			return d.Errf("unrecognized subdirective %q", name)
		}
		if err := f(args); err != nil {
			return d.Err(err.Error() + noneGiven(args))
		}
	}
	return nil
}

// noneGiven explains a setting found without arguments: the Caddyfile
// drops a {$VAR} whose variable is unset or empty when it parses, which
// leaves the setting bare.
func noneGiven(args []string) string {
	if len(args) > 0 {
		return ""
	}
	return ", and has none: is the environment variable of a {$VAR} written there unset?"
}
