package alipay

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/protocol/protocoltest"
	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// query_on_return: the return's token carries alipay.trade.query's answer,
// or no trade_status at all when there is no trustworthy answer.
func TestQueryOnReturn(t *testing.T) {
	fixClock(t, time.Now())
	vec := testvec.Load(t)
	u, err := url.Parse(vec.Return.RedirectURL)
	require.NoError(t, err)
	h, g := newAPIWorld(t, func(h *Handler) { h.QueryOnReturn = true })
	answer := func(outTradeNo, tradeNo string) string {
		return `{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS","out_trade_no":"` + outTradeNo +
			`","trade_no":"` + tradeNo + `","total_amount":"88.88"}`
	}
	no, tradeNo := u.Query().Get("out_trade_no"), u.Query().Get("trade_no")
	require.NotEmpty(t, tradeNo)
	for name, c := range map[string]struct {
		answer string
		want   string
	}{
		"paid": {protocoltest.SignedBody(t, "alipay.trade.query", answer(no, tradeNo)), `"TRADE_SUCCESS"`},
		"no trade_no in the answer": {protocoltest.SignedBody(t, "alipay.trade.query",
			`{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS","out_trade_no":"`+no+`"}`), `"TRADE_SUCCESS"`},
		"not signed": {`{"alipay_trade_query_response":` + answer(no, tradeNo) + `}`, ""},
		"not found":  {protocoltest.SignedBody(t, "alipay.trade.query", `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}`), ""},
		// Signed by Alipay, but about another trade: a replayed answer.
		"another out_trade_no":     {protocoltest.SignedBody(t, "alipay.trade.query", answer("A1", tradeNo)), ""},
		"another trade_no":         {protocoltest.SignedBody(t, "alipay.trade.query", answer(no, "2024000000000000000000000001")), ""},
		"out_trade_no in capitals": {protocoltest.SignedBody(t, "alipay.trade.query", strings.Replace(answer("A1", tradeNo), `,"out_trade_no"`, `,"OUT_TRADE_NO":"`+no+`","out_trade_no"`, 1)), ""},
	} {
		t.Run(name, func(t *testing.T) {
			g.setAnswer(func(method string, biz map[string]any) string {
				assert.Equal(t, "alipay.trade.query", method)
				assert.Equal(t, "20240520131415000001", biz["out_trade_no"])
				return c.answer
			})
			next := &upstream{status: 200}
			w := serve(t, h, next, httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+u.RawQuery, nil))
			require.Equal(t, 200, w.Code)
			require.Equal(t, 1, next.calls, "the return goes on either way")
			claims, err := h.tokens.Parse(next.req.Header.Get(TokenHeader), now())
			require.NoError(t, err)
			assert.Equal(t, c.want, string(claims["trade_status"]))
		})
	}
}

// Concurrent returns of one trade share one query; past the bound on
// queries in flight, returns go on at once without the claim.
func TestQueryOnReturnBounded(t *testing.T) {
	fixClock(t, time.Now())
	h, g := newAPIWorld(t, func(h *Handler) { h.QueryOnReturn = true })
	logs := observe(h)
	release := make(chan struct{})
	var asked sync.Map // out_trade_no → count
	g.setAnswer(func(method string, biz map[string]any) string {
		n, _ := asked.LoadOrStore(biz["out_trade_no"], new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		<-release
		no := biz["out_trade_no"].(string)
		return protocoltest.SignedBody(t, method, `{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS","out_trade_no":"`+no+`"}`)
	})
	ret := testvec.Load(t).Return.Params
	returnOf := func(no string) *http.Request {
		p := maps.Clone(ret)
		p["out_trade_no"] = no
		return httptest.NewRequest("GET", "http://shop.example.com/alipay/return?"+protocoltest.SignedCallback(t, p), nil)
	}
	type result struct {
		code        int
		tradeStatus string
	}
	run := func(r *http.Request, out chan<- result) {
		next := &upstream{status: 200}
		w := serve(t, h, next, r)
		res := result{code: w.Code}
		if next.req != nil {
			claims, err := h.tokens.Parse(next.req.Header.Get(TokenHeader), now())
			assert.NoError(t, err) // not require: this runs in goroutines
			res.tradeStatus = string(claims["trade_status"])
		}
		out <- res
	}
	// Ten returns of one trade while its query hangs: one gateway call.
	same := make(chan result, 10)
	for range 10 {
		go run(returnOf("SAME1"), same)
	}
	require.Eventually(t, func() bool { n, ok := asked.Load("SAME1"); return ok && n.(*atomic.Int32).Load() == 1 }, 5*time.Second, time.Millisecond)
	// Other trades fill the remaining slots; beyond them, returns go on at once.
	held := make(chan result, maxReturnQueries)
	for i := range maxReturnQueries - 1 {
		go run(returnOf(fmt.Sprintf("HELD%d", i)), held)
	}
	require.Eventually(t, func() bool {
		n := 0
		asked.Range(func(any, any) bool { n++; return true })
		return n == maxReturnQueries
	}, 5*time.Second, time.Millisecond)
	over := make(chan result, 1)
	run(returnOf("OVER1"), over)
	res := <-over
	assert.Equal(t, 200, res.code)
	assert.Empty(t, res.tradeStatus, "past the bound, no claim")
	_, askedOver := asked.Load("OVER1")
	assert.False(t, askedOver, "past the bound, no call")
	assert.Contains(t, lastEvent(t, logs)["reason"], "too many queries in flight")

	close(release)
	for range 10 {
		r := <-same
		assert.Equal(t, 200, r.code)
		assert.Equal(t, `"TRADE_SUCCESS"`, r.tradeStatus)
	}
	for range maxReturnQueries - 1 {
		assert.Equal(t, `"TRADE_SUCCESS"`, (<-held).tradeStatus)
	}
	n, _ := asked.Load("SAME1")
	assert.Equal(t, int32(1), n.(*atomic.Int32).Load(), "one query for the ten returns")
}
