package alipay

import (
	"errors"

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

// eventsTotal lives for the process, so counts survive config reloads; each
// config's registry gets it registered once.
var eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "caddy",
	Subsystem: "alipay",
	Name:      "events_total",
	Help:      "Alipay pay, notify, return and API requests handled, by outcome.",
}, []string{"event", "outcome"})

// eventMetrics holds the counters resolved once, so counting costs no label
// hashing or allocation on the request path.
type eventMetrics struct {
	counters map[eventOutcome]prometheus.Counter
}

func newEventMetrics(reg prometheus.Registerer) (*eventMetrics, error) {
	if reg != nil {
		if err := reg.Register(eventsTotal); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	m := &eventMetrics{counters: make(map[eventOutcome]prometheus.Counter)}
	for _, e := range allEvents {
		for _, o := range allOutcomes {
			m.counters[eventOutcome{e, o}] = eventsTotal.WithLabelValues(e, string(o))
		}
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
