package alipay

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// An endpoint is one of the paths under the prefix that the handler
// serves itself.
type endpoint uint8

const (
	notAnEndpoint endpoint = iota
	endpointPay
	endpointNotify
	endpointReturn
	endpointAPI
)

// maxPathSegments bounds the segments of a path that routing looks at:
// the prefix (at most maxPrefixSegments), a script name before it, the
// endpoint and the API method.
const (
	maxPrefixSegments = 8
	maxPathSegments   = 16
)

// A router tells which endpoint a request path is for. It reads the path
// as the most lenient of common web frameworks and servers would route
// it, so that no spelling of an endpoint that a shop's own router might
// send to its Alipay view can pass on to the shop unverified:
//
//   - letters in any case (case-insensitive routes);
//   - empty segments and a trailing slash ignored, \ read as / (merged
//     slashes, optional trailing slashes, IIS);
//   - dot segments resolved (. and ..);
//   - ;parameters dropped from each segment (Tomcat, Spring, Jetty);
//   - percent escapes decoded again, up to three times (servers that
//     decode twice), an escape that is not valid kept as it is;
//   - spaces and control characters around a segment, trailing dots,
//     and whatever follows a NUL dropped (Windows file names, C strings);
//   - a format suffix on the endpoint (notify.json, as Rails routes it,
//     notify.php), and whatever follows it (PHP's PATH_INFO);
//   - the prefix after a script name (/index.php/alipay/notify, as PHP
//     front controllers route it).
//
// Matching allocates nothing unless the path holds a percent escape.
type router struct {
	prefix []string // the prefix's segments, as configured
}

func newRouter(prefix string) router {
	return router{prefix: strings.FieldsFunc(prefix, func(r rune) bool { return r == '/' })}
}

// match returns the endpoint that path is for and, for the API, the
// method segment ("" if there is none, or more than one segment).
func (rt router) match(path string) (endpoint, string) {
	path = unescapeRepeatedly(path)
	var segs [maxPathSegments]string
	depth := 0 // may exceed len(segs): deeper segments are counted, not kept
	for start, i := 0, 0; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' && path[i] != '\\' {
			continue
		}
		seg := path[start:i]
		start = i + 1
		switch seg = cleanSegment(seg); seg {
		case "", ".":
		case "..":
			if depth > 0 {
				depth--
			}
		default:
			if depth < len(segs) {
				segs[depth] = seg
			}
			depth++
		}
	}
	kept := segs[:min(depth, len(segs))]
	if ep, method := rt.matchAt(kept, depth); ep != notAnEndpoint {
		return ep, method
	}
	// The prefix may follow a script name, as in /index.php/alipay/notify.
	for i, seg := range kept {
		if isScriptName(seg) {
			if ep, method := rt.matchAt(kept[i+1:], depth-i-1); ep != notAnEndpoint {
				return ep, method
			}
		}
	}
	return notAnEndpoint, ""
}

// matchAt matches segs, the first of depth segments, against the prefix
// and an endpoint.
func (rt router) matchAt(segs []string, depth int) (endpoint, string) {
	n := len(rt.prefix)
	if len(segs) <= n {
		return notAnEndpoint, ""
	}
	for i, want := range rt.prefix {
		if !strings.EqualFold(segs[i], want) {
			return notAnEndpoint, ""
		}
	}
	name := segs[n]
	after := depth - n - 1 // segments after the endpoint's
	if strings.EqualFold(name, "api") {
		if after == 1 && len(segs) > n+1 {
			return endpointAPI, segs[n+1]
		}
		return endpointAPI, ""
	}
	base, _, suffixed := strings.Cut(name, ".")
	var ep endpoint
	switch {
	case strings.EqualFold(base, "pay"):
		ep = endpointPay
	case strings.EqualFold(base, "notify"):
		ep = endpointNotify
	case strings.EqualFold(base, "return"):
		ep = endpointReturn
	default:
		return notAnEndpoint, ""
	}
	if after > 0 && !suffixed {
		return notAnEndpoint, ""
	}
	return ep, ""
}

// cleanSegment is a path segment as a lenient router compares it.
func cleanSegment(s string) string {
	plain := true // the common case: nothing to clean
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c > ' ' && c < utf8.RuneSelf && c != 0x7f && c != ';' && c != '.'
	}
	if plain {
		return s
	}
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimFunc(s, isBlank)
	if s == "." || s == ".." {
		return s
	}
	return strings.TrimRightFunc(s, func(r rune) bool { return r == '.' || isBlank(r) })
}

// isBlank reports whether r is a space, a control character or an
// invisible formatting character (such as a zero-width space).
func isBlank(r rune) bool {
	return r <= ' ' || r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// scriptSuffixes are the file name extensions of scripts that servers run
// with the rest of the path as PATH_INFO.
var scriptSuffixes = []string{".php", ".phtml", ".cgi", ".fcgi", ".pl", ".py", ".rb", ".jsp", ".asp", ".aspx", ".ashx"}

func isScriptName(seg string) bool {
	if strings.IndexByte(seg, '.') < 0 {
		return false
	}
	for _, suf := range scriptSuffixes {
		if len(seg) > len(suf) && strings.EqualFold(seg[len(seg)-len(suf):], suf) {
			return true
		}
	}
	return false
}

// unescapeRepeatedly decodes the percent escapes left in an already
// decoded path, as a server that decodes twice does, up to three times.
// An invalid escape stays as it is. It allocates only if path holds an
// escape.
func unescapeRepeatedly(path string) string {
	for range 3 {
		if strings.IndexByte(path, '%') < 0 {
			return path
		}
		decoded := lenientUnescape(path)
		if decoded == path {
			return path
		}
		path = decoded
	}
	return path
}

func lenientUnescape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if hi, lo := fromHex(s[i+1]), fromHex(s[i+2]); hi >= 0 && lo >= 0 {
				if b == nil {
					b = make([]byte, 0, len(s))
					b = append(b, s[:i]...)
				}
				b = append(b, byte(hi<<4|lo))
				i += 2
				continue
			}
		}
		if b != nil {
			b = append(b, s[i])
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// fromHex is the value of a hex digit, or -1.
func fromHex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
