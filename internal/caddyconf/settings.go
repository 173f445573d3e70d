package caddyconf

import (
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// A StringSetting is a string setting of a module by its name, which the
// Caddyfile and JSON share, and the field that holds it.
type StringSetting struct {
	Name  string
	Field *string
}

// ResolvePlaceholders replaces the placeholders known at load time
// ({env.*}, {file.*}) in each setting, and trims the result. An unknown
// placeholder becomes empty, which the setting's own check then refuses.
func ResolvePlaceholders(settings []StringSetting) {
	repl := caddy.NewReplacer()
	for _, s := range settings {
		*s.Field = strings.TrimSpace(repl.ReplaceKnown(*s.Field, ""))
	}
}

// MissingStringSettings lists the exported string fields of the struct
// that module points to whose json name is not in settings with that
// field: a setting left out would be neither parsed from the Caddyfile
// nor resolved, and take {env.X} as it is. Tests call it.
func MissingStringSettings(module any, settings []StringSetting) []string {
	byField := map[*string]string{}
	for _, s := range settings {
		byField[s.Field] = s.Name
	}
	v := reflect.ValueOf(module).Elem()
	var missing []string
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || f.Type.Kind() != reflect.String || name == "" || name == "-" {
			continue
		}
		if byField[v.Field(i).Addr().Interface().(*string)] != name {
			missing = append(missing, name)
		}
	}
	return missing
}

// AcceptsJSON reports whether the client asked for application/json, in
// any of its Accept headers.
func AcceptsJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "application/json" {
				return true
			}
		}
	}
	return false
}
