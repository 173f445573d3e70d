package alipay

import (
	"context"
	"errors"

	"golang.org/x/sync/singleflight"
)

// maxReturnQueries bounds the query_on_return calls that one handler has
// in flight: a replayed return URL verifies every time, and without a
// bound a hanging gateway would hold a connection for each replay.
const maxReturnQueries = 16

// errQueriesBusy: the bound is reached; the return goes on without the
// claim.
var errQueriesBusy = errors.New("too many queries in flight; the return goes on without trade_status")

// returnQueries runs query_on_return's alipay.trade.query calls: one call
// for all the returns of a trade that arrive while it runs, and at most
// maxReturnQueries calls at once.
type returnQueries struct {
	group singleflight.Group
	slots chan struct{}
}

func newReturnQueries() *returnQueries {
	return &returnQueries{slots: make(chan struct{}, maxReturnQueries)}
}

// tradeStatus is the trade's status as h's gateway answers it, shared
// with the concurrent queries of the same trade. The call outlives ctx,
// whose request may end first, within the client's own timeout.
func (q *returnQueries) tradeStatus(ctx context.Context, h *Handler, outTradeNo, tradeNo string) (string, error) {
	ch := q.group.DoChan(outTradeNo+"\x00"+tradeNo, func() (any, error) {
		select {
		case q.slots <- struct{}{}:
		default:
			return "", errQueriesBusy
		}
		defer func() { <-q.slots }()
		return h.client.TradeStatus(context.WithoutCancel(ctx), outTradeNo, tradeNo)
	})
	select {
	case res := <-ch:
		return res.Val.(string), res.Err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
