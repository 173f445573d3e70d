package protocol

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CheckGateway accepts https URLs, and http ones on loopback only (a local
// alipay_sandbox).
func CheckGateway(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	if u.ForceQuery && u.RawQuery == "" {
		// As Alipay's own samples write it, ready for a query to be
		// appended: the sidecar appends its own.
		return fmt.Errorf("%q ends in \"?\": leave it out (%s)", raw, strings.TrimSuffix(raw, "?"))
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must be production, sandbox or an absolute URL without a query", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q: plain http is allowed only for a loopback host (a local alipay_sandbox)", raw)
	}
	return fmt.Errorf("%q: scheme must be https", raw)
}

// CheckCallbackURL accepts absolute http(s) URLs without a query, as
// notify_url and return_url: Alipay would not sign extra query
// parameters.
func CheckCallbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q must be an absolute http(s) URL", raw)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("%q must have no query or fragment: Alipay does not sign extra parameters", raw)
	}
	return nil
}

// IsLoopback reports whether host (a name or an IP address without
// brackets) is this machine: localhost, 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ValidHostName accepts DNS names and IPv4 addresses, in lower case:
// labels of letters, digits and hyphens, at most 253 characters.
func ValidHostName(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
