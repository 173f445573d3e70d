package alipay

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Events and their outcomes: the values of the metric's labels and of the
// log lines' event and outcome fields. Labels never carry client data.
const (
	eventPay    = "pay"
	eventNotify = "notify"
	eventReturn = "return"
	eventAPI    = "api"
	eventRefund = "refund"
)

// An outcome is how an event ended.
type outcome string

const (
	outcomeOK             outcome = "ok"              // signed, or verified and accepted
	outcomeForbidden      outcome = "forbidden"       // pay, api: token missing, invalid or expired
	outcomeInvalid        outcome = "invalid"         // a claim out of range, wrong method, malformed or oversized
	outcomeRefused        outcome = "refused"         // callback: signature, app_id or seller_id
	outcomeUpstreamFailed outcome = "upstream_failed" // notify: the upstream did not answer 2xx; api: the gateway failed
	outcomeUnacknowledged outcome = "unacknowledged"  // notify: the upstream answered 2xx without acknowledging the notification
	outcomeAborted        outcome = "aborted"         // notify: Alipay closed the connection before the upstream answered
	outcomeUnconfirmed    outcome = "unconfirmed"     // legacy callback: notify_verify gave no answer
)

var (
	allEvents   = []string{eventPay, eventNotify, eventReturn, eventAPI, eventRefund}
	allOutcomes = []outcome{outcomeOK, outcomeForbidden, outcomeInvalid, outcomeRefused, outcomeUpstreamFailed, outcomeUnacknowledged, outcomeAborted, outcomeUnconfirmed}
)

// The collectors live for the process, so counts survive config reloads;
// each config's registry gets them registered once.
var (
	eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "alipay",
		Name:      "events_total",
		Help:      "Alipay pay, notify, return and API requests handled, by outcome.",
	}, []string{"event", "outcome"})

	upstreamSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy",
		Subsystem: "alipay",
		Name:      "upstream_duration_seconds",
		Help:      "How long the shop took to answer a verified notify or return forwarded to it.",
		Buckets:   durationBuckets,
	}, []string{"event"})

	gatewaySeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy",
		Subsystem: "alipay",
		Name:      "gateway_duration_seconds",
		Help:      "How long each call to Alipay took, by OpenAPI method, legacy service or notify_verify.",
		Buckets:   durationBuckets,
	}, []string{"method"})
)

// durationBuckets span a shop's or Alipay's quick answer (5 ms) to the
// longest wait of a call (15 s, a gateway call's bound).
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15}

// eventMetrics holds the counters and the upstream histograms resolved
// once, so that the request path costs no label hashing or allocation.
type eventMetrics struct {
	counters map[eventOutcome]prometheus.Counter
	upstream map[string]prometheus.Observer
}

func newEventMetrics(reg prometheus.Registerer) (*eventMetrics, error) {
	if reg != nil {
		for _, c := range []prometheus.Collector{eventsTotal, upstreamSeconds, gatewaySeconds} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
			}
		}
	}
	m := &eventMetrics{counters: make(map[eventOutcome]prometheus.Counter), upstream: make(map[string]prometheus.Observer)}
	for _, e := range allEvents {
		for _, o := range allOutcomes {
			m.counters[eventOutcome{e, o}] = eventsTotal.WithLabelValues(e, string(o))
		}
	}
	for _, e := range []string{eventNotify, eventReturn} {
		m.upstream[e] = upstreamSeconds.WithLabelValues(e)
	}
	return m, nil
}

// eventOutcome is a counter's labels.
type eventOutcome struct {
	event   string
	outcome outcome
}

func (m *eventMetrics) count(event string, o outcome) {
	if c := m.counters[eventOutcome{event, o}]; c != nil {
		c.Inc()
	}
}

// upstreamTook records how long the shop took to answer a forwarded
// callback, event notify or return.
func (m *eventMetrics) upstreamTook(event string, d time.Duration) {
	if o := m.upstream[event]; o != nil {
		o.Observe(d.Seconds())
	}
}

// gatewayTook records one call to Alipay. method is one of a fixed set:
// the configured api_methods or the protocol's own calls.
func (*eventMetrics) gatewayTook(method string, d time.Duration) {
	gatewaySeconds.WithLabelValues(method).Observe(d.Seconds())
}
