package alipay

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// An endpoint is one of the paths under the prefix that the handler
// serves itself, or a path that it forwards callbacks to.
type endpoint uint8

const (
	notAnEndpoint endpoint = iota
	endpointPay
	endpointNotify
	endpointReturn
	endpointAPI
	endpointRefund // the legacy refund link for the seller
	// endpointForward is forward_notify's or forward_return's path: the
	// shop's own callback view, which only the handler's forward may
	// reach.
	endpointForward
)

// maxPrefixSegments bounds the segments of prefix.
const maxPrefixSegments = 8

// A router tells which endpoint a request path is for. It reads the path
// as the most lenient of common web frameworks and servers would route
// it, so that no spelling of an endpoint that a shop's own router might
// send to its Alipay view can pass on to the shop unverified:
//
//   - letters in any case, compared after Unicode compatibility
//     normalisation (NFKC) and full case folding, with the dotted and the
//     dotless i both read as i: Java's equalsIgnoreCase and Python's and
//     JavaScript's upper() take "notıfy" for "NOTIFY", and Windows'
//     best-fit mapping turns fullwidth "ｎotify" into "notify";
//   - empty segments and a trailing slash ignored, \ read as / (merged
//     slashes, optional trailing slashes, IIS);
//   - dot segments resolved (. and ..);
//   - ;parameters dropped from each segment (Tomcat, Spring, Jetty);
//   - percent escapes decoded again, up to three times (servers that
//     decode twice), an escape that is not valid kept as it is;
//   - spaces and control characters around a segment, trailing dots,
//     and whatever follows a NUL dropped (Windows file names, C strings);
//   - a format suffix on the last segment (notify.json, as Rails routes
//     it, notify.php), and whatever follows it (PHP's PATH_INFO);
//   - the path after a script name (/index.php/alipay/notify, as PHP
//     front controllers route it);
//   - at any depth.
//
// Matching allocates nothing for a plain ASCII path of up to 16 segments
// without percent escapes.
type router struct {
	prefix   []string   // the prefix's segments, folded
	forwards [][]string // forward_notify's and forward_return's segments, folded
}

// newRouter routes the endpoints under prefix and the forward paths
// (each "" for none).
func newRouter(prefix string, forwards ...string) router {
	rt := router{prefix: pathSegments(prefix)}
	for _, f := range forwards {
		if segs := pathSegments(f); len(segs) > 0 {
			rt.forwards = append(rt.forwards, segs)
		}
	}
	return rt
}

// pathSegments is a configured path's segments as match compares them.
func pathSegments(path string) []string {
	var segs []string
	splitPath(foldPath(path), func(seg string) { segs = append(segs, seg) }, func() {
		if len(segs) > 0 {
			segs = segs[:len(segs)-1]
		}
	})
	return segs
}

// match returns the endpoint that path is for and, for the API, the
// method segment ("" if there is none, or more than one segment).
func (rt router) match(path string) (endpoint, string) {
	path = foldPath(path)
	var buf [16]string
	segs := buf[:0]
	splitPath(path, func(seg string) { segs = append(segs, seg) }, func() {
		if len(segs) > 0 {
			segs = segs[:len(segs)-1]
		}
	})
	if ep, method := rt.matchAt(segs); ep != notAnEndpoint {
		return ep, method
	}
	// The path may follow a script name, as in /index.php/alipay/notify.
	for i, seg := range segs {
		if isScriptName(seg) {
			if ep, method := rt.matchAt(segs[i+1:]); ep != notAnEndpoint {
				return ep, method
			}
		}
	}
	return notAnEndpoint, ""
}

// splitPath calls push with each segment of path as a lenient router
// reads it, and pop for each .. segment.
func splitPath(path string, push func(string), pop func()) {
	for start, i := 0, 0; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' && path[i] != '\\' {
			continue
		}
		seg := cleanSegment(path[start:i])
		start = i + 1
		switch seg {
		case "", ".":
		case "..":
			pop()
		default:
			push(seg)
		}
	}
}

// matchAt matches segs against the endpoints under the prefix and the
// forward paths.
func (rt router) matchAt(segs []string) (endpoint, string) {
	if n := len(rt.prefix); len(segs) > n && segmentsEqual(segs[:n], rt.prefix) {
		name, after := segs[n], segs[n+1:]
		if strings.EqualFold(name, "api") {
			if len(after) == 1 {
				return endpointAPI, after[0]
			}
			return endpointAPI, ""
		}
		for _, e := range []struct {
			name string
			ep   endpoint
		}{{"pay", endpointPay}, {"notify", endpointNotify}, {"return", endpointReturn}, {"refund", endpointRefund}} {
			if lastSegmentMatches(name, e.name, len(after)) {
				return e.ep, ""
			}
		}
	}
	for _, f := range rt.forwards {
		n := len(f) - 1
		if len(segs) > n && segmentsEqual(segs[:n], f[:n]) && lastSegmentMatches(segs[n], f[n], len(segs)-n-1) {
			return endpointForward, ""
		}
	}
	return notAnEndpoint, ""
}

func segmentsEqual(a, b []string) bool {
	for i := range b {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

// lastSegmentMatches reports whether seg, followed by after more
// segments, routes to a path whose last segment is want: seg is want, or
// want with a suffix (notify.json, notify.php), or they share their name
// before a suffix (notify_url for notify_url.php, which a server may
// complete); only a segment with a suffix, a script's name, may be
// followed by more (PATH_INFO).
func lastSegmentMatches(seg, want string, after int) bool {
	base, _, suffixed := strings.Cut(seg, ".")
	if after > 0 && !suffixed {
		return false
	}
	if strings.EqualFold(seg, want) {
		return true
	}
	wantBase, _, _ := strings.Cut(want, ".")
	return wantBase != "" && strings.EqualFold(base, wantBase)
}

// foldCase is Unicode full case folding; it is safe for concurrent use.
var foldCase = cases.Fold()

// foldPath decodes the percent escapes left in an already decoded path
// and, when the path is not plain ASCII, folds it: NFKC, the dotted and
// dotless i read as i, full case folding. Folding may turn fullwidth
// characters into /, \ or %, so the two alternate, at most three times.
// It allocates only for a path with an escape or a non-ASCII character.
func foldPath(path string) string {
	for range 3 {
		p := unescapeRepeatedly(path)
		if !isASCII(p) {
			p = foldUnicode(p)
		}
		if p == path {
			break
		}
		path = p
	}
	return path
}

func foldUnicode(s string) string {
	s = readTurkishI(norm.NFKC.String(s))
	return readTurkishI(norm.NFKC.String(foldCase.String(s)))
}

// readTurkishI reads İ (U+0130) and ı (U+0131) as i: the simple case
// mappings that Java and JavaScript apply take them for I and i.
func readTurkishI(s string) string {
	if !strings.ContainsAny(s, "\u0130\u0131") {
		return s
	}
	return strings.NewReplacer("\u0130", "i", "\u0131", "i").Replace(s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
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

// rewriteHeaders are the request headers by which some servers and
// frameworks route instead of the request line's path: IIS's URL Rewrite
// and ARR, and the PHP frameworks that follow them.
var rewriteHeaders = []string{"X-Original-Url", "X-Rewrite-Url"}

// headerPath is the path of a rewrite header's value: a path with an
// optional query, or an absolute URL, decoded once as Go decodes a
// request line's path.
func headerPath(value string) string {
	value = strings.TrimSpace(value)
	if u, err := url.Parse(value); err == nil && u.IsAbs() {
		return u.Path
	}
	if i := strings.IndexAny(value, "?#"); i >= 0 {
		value = value[:i]
	}
	return lenientUnescape(value)
}
