#!/usr/bin/env bash
# End-to-end load comparison, loopback only:
#
#   sidecar  wrk -> Caddy (alipay handler verifies, signs X-Alipay-Token)
#                -> reverse_proxy -> Node upstream that answers 200 success
#   node     wrk -> Node shop that verifies in-app with the official
#                   alipay-sdk (checkNotifySignV2) and answers `success`
#
# Both do the same business work (none); they differ only in where the
# signature is verified. See bench/README.md.
#
#   bash bench/run.sh
#
# Settings (environment):
#   WRK_THREADS=2 WRK_CONNS=32 WRK_DURATION=10s   the same for every setup
#   WARMUP=3s        one unmeasured wrk run per setup before the rounds
#   ROUNDS=3         measured runs per setup, interleaved; the median is kept
#   SETUPS="sidecar sidecar_log sidecar_1cpu node node_cluster"   which setups
#   NODE_CLUSTER_WORKERS=2   workers of the node_cluster setup
#   PORT_BASE=18480  ports PORT_BASE..PORT_BASE+5 on 127.0.0.1
#   KEEP_TMP=1       keep the work directory (logs, Caddyfiles, wrk output)
#
# Needs go, node + npm, curl, wrk (installed with apt-get if missing and
# root). Installs bench/node/node_modules with `npm ci` when missing.
set -euo pipefail

WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-32}
WRK_DURATION=${WRK_DURATION:-10s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-3}
SETUPS=${SETUPS:-"sidecar sidecar_log sidecar_1cpu node node_cluster"}
NODE_CLUSTER_WORKERS=${NODE_CLUSTER_WORKERS:-2}
PORT_BASE=${PORT_BASE:-18480}
KEEP_TMP=${KEEP_TMP:-0}

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)
KEYS=$REPO/testdata/keys
APP_ID=2021000000000001

PORT_SIDECAR=$PORT_BASE
PORT_UPSTREAM=$((PORT_BASE + 1))
PORT_SIDECAR_LOG=$((PORT_BASE + 2))
PORT_NODE=$((PORT_BASE + 3))
PORT_NODE_CLUSTER=$((PORT_BASE + 4))
PORT_SIDECAR_1CPU=$((PORT_BASE + 5))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/caddy-alipay-bench.XXXXXX")
PIDS=()

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

# Stop what this script started, by pid: first the children (node:cluster
# workers), then the process itself; SIGKILL after 5 s.
stop_pid() {
	local pid=$1 child
	kill -0 "$pid" 2>/dev/null || return 0
	for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
		kill -TERM "$child" 2>/dev/null || true
	done
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	wait 2>/dev/null || true
	if [[ $KEEP_TMP == 1 || $rc != 0 ]]; then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
command -v go >/dev/null || die "go is required"
command -v node >/dev/null || die "node is required"
command -v npm >/dev/null || die "npm is required"
command -v curl >/dev/null || die "curl is required"
if ! command -v wrk >/dev/null; then
	[[ $(id -u) == 0 ]] || die "wrk is missing: apt-get install -y wrk"
	log "installing wrk"
	apt-get install -y wrk >"$WORK/apt.log" 2>&1 ||
		{ apt-get update >>"$WORK/apt.log" 2>&1 && apt-get install -y wrk >>"$WORK/apt.log" 2>&1; } ||
		die "apt-get install wrk failed, see $WORK/apt.log"
fi

for p in $PORT_SIDECAR $PORT_UPSTREAM $PORT_SIDECAR_LOG $PORT_NODE $PORT_NODE_CLUSTER $PORT_SIDECAR_1CPU; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		die "port $p on 127.0.0.1 is in use: set PORT_BASE"
	fi
done

if [[ ! -f $BENCH/node/node_modules/alipay-sdk/package.json ]]; then
	log "npm ci in bench/node"
	(cd "$BENCH/node" && npm ci --no-audit --no-fund --loglevel=error) >"$WORK/npm.log" 2>&1 ||
		{ cat "$WORK/npm.log" >&2; die "npm ci failed"; }
fi
SDK_VERSION=$(node -p "require('$BENCH/node/node_modules/alipay-sdk/package.json').version")

log "building caddy with the alipay module"
(cd "$REPO" && go build -o "$WORK/caddy" ./cmd/caddy)

# ---------------------------------------------------------------- bodies
node - "$REPO/testdata/vectors.json" "$WORK" <<'EOF'
const fs = require('fs');
const [file, dir] = process.argv.slice(2);
const body = JSON.parse(fs.readFileSync(file, 'utf8')).notify.cases[0].post_body;
fs.writeFileSync(dir + '/notify.body', body);
const tampered = body.replace('total_amount=88.88', 'total_amount=0.01');
if (tampered === body) throw new Error('vector has no total_amount=88.88 to tamper with');
fs.writeFileSync(dir + '/tampered.body', tampered);
EOF

# ---------------------------------------------------------------- caddy
SECRET=bench-only-shared-secret-0123456789abcdef
write_caddyfile() { # file port quiet
	local file=$1 port=$2 quiet=$3
	{
		echo '{'
		echo '	admin off'
		if [[ $quiet == 1 ]]; then
			# The handler logs one Info line per notification; WARN drops
			# those and keeps every refused or failed one (Warn level).
			echo '	log default {'
			echo '		output stderr'
			echo '		format json'
			echo '		level WARN'
			echo '	}'
		fi
		echo '}'
		echo
		echo "http://127.0.0.1:$port {"
		echo '	alipay {'
		echo "		app_id $APP_ID"
		echo "		app_private_key $KEYS/app_private_key_pkcs1.pem"
		echo "		alipay_public_key $KEYS/alipay_public_key.pem"
		echo "		secret $SECRET"
		echo '	}'
		echo "	reverse_proxy 127.0.0.1:$PORT_UPSTREAM"
		echo '}'
	} >"$file"
}

start() { # name cmd...   (stdout+stderr to $WORK/<name>.log)
	local name=$1
	shift
	"$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	eval "PID_$name=$!"
}

export XDG_DATA_HOME=$WORK/xdg-data XDG_CONFIG_HOME=$WORK/xdg-config

write_caddyfile "$WORK/Caddyfile.sidecar" "$PORT_SIDECAR" 1
write_caddyfile "$WORK/Caddyfile.sidecar_log" "$PORT_SIDECAR_LOG" 0
write_caddyfile "$WORK/Caddyfile.sidecar_1cpu" "$PORT_SIDECAR_1CPU" 1

log "starting servers on 127.0.0.1:$PORT_BASE-$PORT_SIDECAR_1CPU"
start upstream env PORT=$PORT_UPSTREAM NODE_WORKERS=1 REQUIRE_TOKEN=1 node "$BENCH/node/upstream.js"
start sidecar "$WORK/caddy" run --adapter caddyfile --config "$WORK/Caddyfile.sidecar"
start sidecar_log "$WORK/caddy" run --adapter caddyfile --config "$WORK/Caddyfile.sidecar_log"
start sidecar_1cpu env GOMAXPROCS=1 "$WORK/caddy" run --adapter caddyfile --config "$WORK/Caddyfile.sidecar_1cpu"
common_node_env=(APP_ID=$APP_ID APP_PRIVATE_KEY=$KEYS/app_private_key_pkcs1.pem ALIPAY_PUBLIC_KEY=$KEYS/alipay_public_key.pem)
start node env "${common_node_env[@]}" PORT=$PORT_NODE NODE_WORKERS=1 node "$BENCH/node/shop.js"
start node_cluster env "${common_node_env[@]}" PORT=$PORT_NODE_CLUSTER NODE_WORKERS=$NODE_CLUSTER_WORKERS node "$BENCH/node/shop.js"

declare -A URL=(
	[sidecar]=http://127.0.0.1:$PORT_SIDECAR/alipay/notify
	[sidecar_log]=http://127.0.0.1:$PORT_SIDECAR_LOG/alipay/notify
	[sidecar_1cpu]=http://127.0.0.1:$PORT_SIDECAR_1CPU/alipay/notify
	[node]=http://127.0.0.1:$PORT_NODE/alipay/notify
	[node_cluster]=http://127.0.0.1:$PORT_NODE_CLUSTER/alipay/notify
)
declare -A DESC=(
	[sidecar]="Caddy alipay sidecar -> Node upstream (handler log off: level WARN)"
	[sidecar_log]="Caddy alipay sidecar -> Node upstream (default logging: 1 Info line/notify)"
	[sidecar_1cpu]="as sidecar, Caddy with GOMAXPROCS=1"
	[node]="Node shop, alipay-sdk $SDK_VERSION checkNotifySignV2, 1 process"
	[node_cluster]="Node shop, alipay-sdk $SDK_VERSION checkNotifySignV2, cluster x$NODE_CLUSTER_WORKERS"
)
for s in $SETUPS; do [[ -n ${URL[$s]:-} ]] || die "unknown setup $s (have: ${!URL[*]})"; done

wait_port() { # port name
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		local pidvar=PID_$2
		kill -0 "${!pidvar}" 2>/dev/null || { cat "$WORK/$2.log" >&2; die "$2 exited at start"; }
		sleep 0.1
	done
	cat "$WORK/$2.log" >&2
	die "$2 did not listen on $1 within 10 s"
}
wait_port "$PORT_UPSTREAM" upstream
wait_port "$PORT_SIDECAR" sidecar
wait_port "$PORT_SIDECAR_LOG" sidecar_log
wait_port "$PORT_NODE" node
wait_port "$PORT_NODE_CLUSTER" node_cluster
wait_port "$PORT_SIDECAR_1CPU" sidecar_1cpu

# ---------------------------------------------------------------- checks
post() { # url bodyfile -> "<status> <body>"
	local out
	out=$(curl -sS --max-time 5 -o "$WORK/curl.out" -w '%{http_code}' \
		-H 'Content-Type: application/x-www-form-urlencoded; charset=utf-8' \
		--data-binary "@$2" "$1")
	printf '%s %s' "$out" "$(cat "$WORK/curl.out")"
}
log "checking each setup answers the vector with exactly 'success', a tampered one not"
for s in $SETUPS; do
	got=$(post "${URL[$s]}" "$WORK/notify.body")
	[[ $got == "200 success" ]] || die "$s: vector answered '$got', want '200 success'"
	got=$(post "${URL[$s]}" "$WORK/tampered.body")
	[[ $got == 4??\ fail ]] || die "$s: tampered body answered '$got', want '4xx fail'"
	printf '    %-13s vector: 200 success   tampered: %s\n' "$s" "$got" >&2
done
# The upstream insists on a token, so a sidecar that did not forward one
# would have failed above; and a direct post without one is refused.
got=$(post "http://127.0.0.1:$PORT_UPSTREAM/alipay/notify" "$WORK/notify.body")
[[ $got == "403 no token" ]] || die "upstream without token answered '$got', want '403 no token'"

# ---------------------------------------------------------------- load
CLK_TCK=$(getconf CLK_TCK)
# CPU ticks (user+system) of a process and its children (cluster workers).
cpu_ticks() {
	local total=0 pid f
	for pid in "$@" $(for p in "$@"; do ps -o pid= --ppid "$p" 2>/dev/null; done); do
		f=/proc/$pid/stat
		[[ -r $f ]] || continue
		# fields 14, 15 after the ")" that closes comm
		total=$((total + $(sed 's/.*) //' "$f" | awk '{print $12 + $13}')))
	done
	echo "$total"
}
server_pids() {
	case $1 in
	sidecar | sidecar_log | sidecar_1cpu) echo "$(eval echo "\$PID_$1") $PID_upstream" ;;
	*) eval echo "\$PID_$1" ;;
	esac
}

run_wrk() { # setup duration outfile
	timeout 120 wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$2" --timeout 5s --latency \
		-s "$BENCH/notify.lua" "${URL[$1]}" -- "$WORK/notify.body" >"$3" 2>&1 ||
		{ cat "$3" >&2; die "wrk failed against $1"; }
}

LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
log "wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION, $ROUNDS interleaved rounds after a $WARMUP warm-up each"
for s in $SETUPS; do run_wrk "$s" "$WARMUP" "$WORK/warmup.$s.txt"; done

RES=$WORK/results.tsv
: >"$RES"
to_ms() {
	awk '{v = $1; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
	printf "%.2f\n", u == "us" ? v / 1000 : u == "s" ? v * 1000 : u == "m" ? v * 60000 : v}'
}
per_req() { # ticks requests
	awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN {printf "%.0f", n ? t / hz * 1e6 / n : 0}'
}
for r in $(seq "$ROUNDS"); do
	for s in $SETUPS; do
		pids=$(server_pids "$s")
		front=${pids%% *}
		# shellcheck disable=SC2086
		t0=$(cpu_ticks $pids) f0=$(cpu_ticks "$front")
		out=$WORK/wrk.$s.$r.txt
		run_wrk "$s" "$WRK_DURATION" "$out"
		# shellcheck disable=SC2086
		t1=$(cpu_ticks $pids) f1=$(cpu_ticks "$front")
		rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
		reqs=$(awk '/requests in/ {print $1}' "$out")
		p50=$(awk '$1 == "50%" {print $2}' "$out" | to_ms)
		p99=$(awk '$1 == "99%" {print $2}' "$out" | to_ms)
		bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
		errs=$(awk '/Socket errors:/ {sub(/.*Socket errors: /, ""); gsub(/ /, ""); print}' "$out")
		cpu_us=$(per_req $((t1 - t0)) "$reqs")
		front_us=$(per_req $((f1 - f0)) "$reqs")
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$r" "$rps" "$p50" "$p99" "${bad:-0}" "$cpu_us" "$front_us" "${errs:-none}" >>"$RES"
		printf '    round %s %-13s %7.0f req/s  p50 %6.2f ms  p99 %6.2f ms  non-2xx %-3s socket errors %-5s server CPU %s us/req\n' \
			"$r" "$s" "$rps" "$p50" "$p99" "${bad:-0}" "${errs:-none}" "$cpu_us" >&2
	done
done

# ---------------------------------------------------------------- report
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { awk -F'\t' -v s="$1" -v c="$2" '$1 == s {print $c}' "$RES"; }
declare -A MED
{
	echo
	echo "Alipay notify, end to end on loopback: wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION, median of $ROUNDS rounds"
	echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), shared by wrk and the servers; load average before: $LOAD_BEFORE"
	echo "$(go version | awk '{print $3}'), node $(node --version), alipay-sdk $SDK_VERSION, $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
	echo
	printf '%-13s %8s %8s %8s %8s %8s %8s  %s\n' setup 'req/s' 'p50 ms' 'p99 ms' 'non-2xx' 'CPU/req' '(Caddy)' ''
	for s in $SETUPS; do
		MED[$s]=$(col "$s" 3 | median)
		front='-'
		[[ $s == sidecar* ]] && front=$(col "$s" 8 | median)us
		printf '%-13s %8.0f %8.2f %8.2f %8s %6.0fus %8s  %s\n' "$s" "${MED[$s]}" \
			"$(col "$s" 4 | median)" "$(col "$s" 5 | median)" \
			"$(col "$s" 6 | awk '{t += $1} END {print t}')" "$(col "$s" 7 | median)" "$front" "${DESC[$s]}"
	done
	echo "(medians over rounds, non-2xx summed; CPU/req: user+system CPU of all the setup's server"
	echo " processes per request; (Caddy): of which Caddy itself, the rest is the Node upstream)"
	echo
	for a in sidecar sidecar_log sidecar_1cpu; do
		for b in node node_cluster; do
			[[ -n ${MED[$a]:-} && -n ${MED[$b]:-} ]] || continue
			awk -v a="${MED[$a]}" -v b="${MED[$b]}" -v an="$a" -v bn="$b" \
				'BEGIN {printf "ratio %-12s / %-12s = %.2f\n", an, bn, b ? a / b : 0}'
		done
	done
} | tee "$WORK/summary.txt"

# Caddy's log: the handler's events by level and outcome, and anything
# else at warn or above (startup notices aside).
echo
for s in sidecar sidecar_log sidecar_1cpu; do
	[[ -f $WORK/$s.log ]] || continue
	node "$BENCH/node/logsummary.js" "$WORK/$s.log" "caddy log ($s)"
done
for s in upstream node node_cluster; do
	if [[ -s $WORK/$s.log ]]; then
		echo "$s log:"
		head -5 "$WORK/$s.log"
	fi
done
echo "(expected: one warn notify/refused per Caddy from the tampered-body check, and a few"
echo " warn notify/aborted: requests in flight when a wrk run stops)"
exit 0
