package alipay

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay/internal/testvec"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dashboardFile is the Grafana dashboard that the repository ships.
const dashboardFile = "grafana/caddy-alipay.json"

// A selector in a PromQL expression: a metric name, and its label
// matchers.
var (
	selectorRE = regexp.MustCompile(`\b(caddy_alipay_[a-z_]+)(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`^\s*([a-z_]+)\s*(!=|=)\s*"([^"]*)"\s*$`)
)

// dashboardSelector is one series that a dashboard panel queries.
type dashboardSelector struct {
	panel, name string
	matchers    [][3]string // label, = or !=, value
}

// dashboardSelectors reads every selector of every panel's queries.
func dashboardSelectors(t *testing.T) []dashboardSelector {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	require.NotEmpty(t, d.Panels)
	var out []dashboardSelector
	for _, p := range d.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			found := selectorRE.FindAllStringSubmatch(tg.Expr, -1)
			require.NotEmpty(t, found, "panel %q queries no caddy_alipay series: %s", p.Title, tg.Expr)
			for _, m := range found {
				s := dashboardSelector{panel: p.Title, name: m[1]}
				if m[2] != "" {
					for _, part := range strings.Split(strings.Trim(m[2], "{}"), ",") {
						mm := matcherRE.FindStringSubmatch(part)
						require.NotNil(t, mm, "panel %q: matcher %q is not label=\"value\" or label!=\"value\"", p.Title, part)
						s.matchers = append(s.matchers, [3]string{mm[1], mm[2], mm[3]})
					}
				}
				out = append(out, s)
			}
		}
	}
	return out
}

// matches reports whether a sample of metric family fam, named name
// (fam's name, or a histogram's _bucket, _sum or _count), meets s.
func (s dashboardSelector) matches(fam *dto.MetricFamily, m *dto.Metric) bool {
	base := fam.GetName()
	switch {
	case s.name == base:
	case fam.GetType() == dto.MetricType_HISTOGRAM &&
		(s.name == base+"_bucket" || s.name == base+"_sum" || s.name == base+"_count"):
	default:
		return false
	}
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	for _, mt := range s.matchers {
		v, ok := labels[mt[0]]
		if !ok || (mt[1] == "=") != (v == mt[2]) {
			return false
		}
	}
	return true
}

// Every series that the dashboard queries is on a live Caddy's /metrics
// once a payment has gone through: pay, return (with query_on_return,
// a call to Alipay), notify and an API call.
func TestCaddyDashboardSeries(t *testing.T) {
	selectors := dashboardSelectors(t)

	s, upstream := startShop(t)
	tester := loadSidecar(t, `
		app_private_key `+testvec.Key("app_private_key_pkcs1.pem")+`
		alipay_public_key `+testvec.Key("alipay_public_key.pem")+`
		gateway `+sandboxURL+`/gateway.do
		query_on_return on`, upstream, sandboxSite(t, ""))
	no := orderNo("DASH")
	tok := payToken(t, map[string]any{"out_trade_no": no, "total_amount": "3.00", "subject": "dashboard"})
	resp, _ := getStatus(t, tester, caddyURL+"/alipay/pay?token="+tok, 302)
	resp, _ = getStatus(t, tester, resp.Header.Get("Location"), 302)
	resp = payAtCashier(t, tester, resp.Header.Get("Location"), 302)
	tester.AssertGetResponse(resp.Header.Get("Location"), 200, "shop saw /alipay/return")
	awaitNotifications(t, s, 1, func(p map[string]any) bool { return p["out_trade_no"] == no })
	callAPIOK(t, tester, "alipay.trade.query", `{"out_trade_no":"`+no+`"}`)

	families := scrapeMetrics(t)
	for _, sel := range selectors {
		found := false
		for _, fam := range families {
			for _, m := range fam.GetMetric() {
				found = found || sel.matches(fam, m)
			}
		}
		assert.True(t, found, "panel %q queries %s%v, which /metrics does not have", sel.panel, sel.name, sel.matchers)
	}

	// The histograms counted what happened: the shop's answers, and the
	// calls to Alipay by method.
	count := func(name string, label, value string) uint64 {
		for _, m := range families[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
		return 0
	}
	assert.NotZero(t, count("caddy_alipay_upstream_duration_seconds", "event", "notify"))
	assert.NotZero(t, count("caddy_alipay_upstream_duration_seconds", "event", "return"))
	assert.GreaterOrEqual(t, count("caddy_alipay_gateway_duration_seconds", "method", "alipay.trade.query"), uint64(2), "query_on_return and the API's query")
}

// scrapeMetrics reads the test Caddy's /metrics on its admin endpoint.
func scrapeMetrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(adminURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}
