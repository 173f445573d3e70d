package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// JSON as Alipay writes it and as this package reads it: compact, without
// HTML escaping, and with no member name that decoders could read two ways.

// MarshalJSON encodes v as compact JSON as Alipay writes it: without HTML
// escaping, so that & and < stay themselves.
func MarshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// CheckJSONNames refuses JSON in which an object has a member name twice,
// compared case-insensitively: decoders differ in which of two they keep,
// and Go's matches struct fields in any case, while Alipay reads names
// exactly.
func CheckJSONNames(data []byte) error {
	type frame struct {
		object, wantName bool
		names            map[string]bool
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		t, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n := len(stack); n > 0 && stack[n-1].wantName {
			if name, ok := t.(string); ok {
				key := strings.ToLower(strings.ToUpper(name)) // ſ and K fold too
				if stack[n-1].names[key] {
					return fmt.Errorf("%q appears more than once", name)
				}
				stack[n-1].names[key] = true
				stack[n-1].wantName = false
				continue
			}
		}
		switch t {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, wantName: true, names: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: in an object, a name comes next.
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantName = true
		}
	}
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, bytes that are not UTF-8 written as U+FFFD
// (as encoding/json does), <, > and & as themselves. Callback data reaches
// the token through it, so whatever the bytes, the token stays valid JSON.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			if r, size := utf8.DecodeRuneInString(s[i:]); r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i++
				start = i
			} else {
				i += size
			}
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
