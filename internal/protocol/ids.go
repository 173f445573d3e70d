package protocol

import (
	"net/http"
	"regexp"
	"time"
)

var (
	// An Alipay user id, as partners and sellers have: 2088 and 12
	// digits.
	alipayIDRE = regexp.MustCompile(`^2088[0-9]{12}$`)
	// An e-mail address as Alipay's seller_email takes it: one @, a dot
	// in the domain, no spaces.
	emailRE = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// ValidAlipayID reports whether s is an Alipay user id, the form of a
// partner's and a seller's: 2088 and 12 digits.
func ValidAlipayID(s string) bool { return alipayIDRE.MatchString(s) }

// ValidEmail reports whether s is an e-mail address as seller_email
// takes one.
func ValidEmail(s string) bool { return emailRE.MatchString(s) }

// NoRedirectClient is an HTTP client for calls to a gateway or a
// notify_url, which answer themselves or not at all: a redirect is
// returned as the answer, never followed. timeout 0 is none (the caller
// bounds each call).
func NoRedirectClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
