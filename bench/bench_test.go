// Package bench measures what the module costs every write of the server,
// side by side with what users would do otherwise, in one run: make bench.
//
// Scenarios, each a valkey-server on loopback driven by valkey-benchmark
// (SET over 100k random keys, 50 clients, pipeline 1 and 16), interleaved
// over several rounds because these machines are noisy:
//
//  1. plain     valkey-server, no module: the baseline
//  2. empty     module loaded, no triggers
//  3. nomatch   module loaded, 10,000 triggers, none matching the keys
//  4. trigger   one trigger on the keys, its script doing one INCR
//  5. floor     a minimal C module doing the same INCR in a post-notification job
//  6. evalsha   no module: the client sends EVALSHA of a script doing SET and INCR
//  7. notify    keyspace notifications and a valkey-go worker doing the INCRs,
//     pipelined; it restarts 200 ms into each run, as a deploy would
//  8. subscribed a minimal C module subscribed to string events that does
//     nothing: what the server spends on any subscriber, the floor of 3
package bench

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/valkey-iungo/valkey-iungo/config"
	"github.com/valkey-iungo/valkey-iungo/internal/vtest"
)

const (
	keyspace = 100_000
	clients  = 50
	incrLua  = "server.call('INCR', 'counter')"
	evalLua  = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCR', 'counter')"
)

// sample is one valkey-benchmark run.
type sample struct {
	rps, p50, p99 float64 // requests/s, milliseconds
}

type scenario struct {
	name, what string
	server     *vtest.Server
	command    []string // valkey-benchmark arguments after the common ones
	counts     bool     // each SET increments "counter" once
	worker     *worker  // scenario 7
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkScenarios runs every scenario, BENCH_ROUNDS times (7) each,
// BENCH_REQUESTS requests (600,000) a run at pipeline 16 and a quarter of
// that at pipeline 1, and prints the table. Run it once: -benchtime 1x.
func BenchmarkScenarios(b *testing.B) {
	rounds, requests := envInt("BENCH_ROUNDS", 7), envInt("BENCH_REQUESTS", 600_000)
	scenarios := setup(b)
	if only := os.Getenv("BENCH_ONLY"); only != "" {
		// plain, floor and evalsha stay: the ratios need them.
		keep := strings.Split(only+",plain,floor,evalsha", ",")
		scenarios = slices.DeleteFunc(scenarios, func(sc *scenario) bool { return !slices.Contains(keep, sc.name) })
	}
	results := map[string]map[int][]sample{}
	var lags, lost []float64
	for round := 1; round <= rounds; round++ {
		for i := range scenarios {
			// Each round starts with another scenario, so that none always
			// runs first or right after the same neighbour.
			sc := scenarios[(i+round)%len(scenarios)]
			for _, pipeline := range []int{1, 16} {
				n := requests
				if pipeline == 1 {
					n /= 4
				}
				s := run(b, sc, pipeline, n)
				if results[sc.name] == nil {
					results[sc.name] = map[int][]sample{}
				}
				results[sc.name][pipeline] = append(results[sc.name][pipeline], s)
				if sc.worker != nil {
					lag, missing := sc.worker.settle(sc.server, n)
					if pipeline == 16 {
						lags, lost = append(lags, lag.Seconds()*1000), append(lost, float64(missing))
					}
				}
			}
		}
		fmt.Fprintf(os.Stderr, "round %d of %d done\n", round, rounds)
	}
	for b.Loop() {
	}
	report(scenarios, results, lags, lost, rounds, requests)
	reportRouter()
	if os.Getenv("BENCH_ONLY") == "" {
		reportMemory(b)
	}
}

// buildFloor compiles bench/floor/<name>.c into a module.
func buildFloor(b *testing.B, name string) string {
	so := filepath.Join(b.TempDir(), name+".so")
	out, err := exec.Command("gcc", "-O2", "-shared", "-fPIC", "-o", so,
		filepath.Join(vtest.Root(b), "bench", "floor", name+".c")).CombinedOutput()
	if err != nil {
		b.Fatalf("building the %s module: %v\n%s", name, err, out)
	}
	return so
}

func setup(b *testing.B) []*scenario {
	floor, subscribed := buildFloor(b, "floor"), buildFloor(b, "subscribed")
	plainOpts := vtest.Options{NoModule: true}
	plain := vtest.Start(b, plainOpts)
	evalsha := vtest.Start(b, plainOpts)
	sum := sha1.Sum([]byte(evalLua))
	sha := hex.EncodeToString(sum[:])
	if got, err := evalsha.Do("SCRIPT", "LOAD", evalLua).ToString(); err != nil || got != sha {
		b.Fatalf("SCRIPT LOAD: %v %v", got, err)
	}
	empty := vtest.Start(b, vtest.Options{})
	nomatch := vtest.Start(b, vtest.Options{})
	nomatch.MustDo("IUNGO", "RESTORE", string(config.Encode(manyTriggers(10_000, 1, "nomatch"))))
	trigger := vtest.Start(b, vtest.Options{})
	trigger.MustDo("IUNGO", "SCRIPT", "SET", "count", incrLua)
	trigger.MustDo("IUNGO", "TRIGGER", "SET", "key:*", "set", "count")
	floorServer := vtest.Start(b, vtest.Options{NoModule: true, Config: []string{"loadmodule " + floor}})
	subscribedServer := vtest.Start(b, vtest.Options{NoModule: true, Config: []string{"loadmodule " + subscribed}})
	notify := vtest.Start(b, vtest.Options{NoModule: true, Config: []string{"notify-keyspace-events E$"}})
	w := startWorker(b, notify)
	set := []string{"-t", "set"}
	return []*scenario{
		{name: "plain", what: "valkey-server, no module", server: plain, command: set},
		{name: "empty", what: "module, no triggers", server: empty, command: set},
		{name: "nomatch", what: "module, 10,000 triggers, none matching", server: nomatch, command: set},
		{name: "trigger", what: "module, one trigger: INCR", server: trigger, command: set, counts: true},
		{name: "floor", what: "minimal C module: INCR in a job", server: floorServer, command: set, counts: true},
		{name: "evalsha", what: "client EVALSHA: SET + INCR", server: evalsha,
			command: []string{"EVALSHA", sha, "1", "key:__rand_int__", "v"}, counts: true},
		{name: "notify", what: "notifications + valkey-go worker: INCR", server: notify, command: set, worker: w},
		{name: "subscribed", what: "minimal C module subscribed to string events, doing nothing (the floor of 3)",
			server: subscribedServer, command: set},
	}
}

// manyTriggers is a configuration of n triggers over scripts scripts,
// whose patterns start with prefix.
func manyTriggers(n, scripts int, prefix string) config.Config {
	c := config.Config{Classes: config.DefaultClasses}
	for i := range scripts {
		c.Scripts = append(c.Scripts, config.ScriptDef{Name: "s" + strconv.Itoa(i), Source: incrLua})
	}
	for i := range n {
		c.Triggers = append(c.Triggers, config.TriggerDef{Pattern: fmt.Sprintf("%s:%d:*", prefix, i), Events: "set",
			Script: "s" + strconv.Itoa(i%scripts), Enabled: true})
	}
	return c
}

// run runs valkey-benchmark once and checks that counting scenarios
// counted every request.
func run(b *testing.B, sc *scenario, pipeline, n int) sample {
	sc.server.MustDo("SET", "counter", "0")
	if sc.worker != nil {
		sc.worker.restartIn(200 * time.Millisecond)
	}
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(sc.server.Port), "-n", strconv.Itoa(n),
		"-r", strconv.Itoa(keyspace), "-c", strconv.Itoa(clients), "-P", strconv.Itoa(pipeline), "--csv"}
	out, err := vtest.Command(b, "valkey-benchmark", append(args, sc.command...)...).Output()
	if err != nil {
		b.Fatalf("valkey-benchmark for %s: %v", sc.name, err)
	}
	s := parse(b, out)
	if sc.counts {
		if got, _ := sc.server.Do("GET", "counter").AsInt64(); got != int64(n) {
			b.Fatalf("%s: counter %d after %d requests", sc.name, got, n)
		}
	}
	return s
}

func parse(b *testing.B, out []byte) sample {
	rows, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil || len(rows) < 2 {
		b.Fatalf("valkey-benchmark output: %v\n%s", err, out)
	}
	row := rows[len(rows)-1]
	f := func(i int) float64 {
		v, _ := strconv.ParseFloat(row[i], 64)
		return v
	}
	return sample{rps: f(1), p50: f(4), p99: f(6)}
}

// worker is what users do today without the module: subscribe to keyspace
// notifications and increment from a client. It pipelines: events queue
// up while a batch of INCRs is on the wire, and go in the next batch.
type worker struct {
	addr    string
	mu      sync.Mutex
	sub     valkey.Client
	incr    valkey.Client
	events  chan struct{}
	pending sync.WaitGroup
}

func startWorker(b *testing.B, s *vtest.Server) *worker {
	w := &worker{addr: s.Addr, events: make(chan struct{}, 1<<16)}
	var err error
	if w.incr, err = valkey.NewClient(valkey.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true}); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	w.pending.Add(1)
	go w.increment(done)
	b.Cleanup(func() {
		w.mu.Lock()
		if w.sub != nil {
			w.sub.Close()
		}
		w.mu.Unlock()
		close(done)
		w.pending.Wait()
		w.incr.Close()
	})
	if err := w.subscribe(); err != nil {
		b.Fatal(err)
	}
	return w
}

// increment sends one INCR per event, in batches of what has queued up.
func (w *worker) increment(done chan struct{}) {
	defer w.pending.Done()
	ctx := context.Background()
	var batch valkey.Commands
	for {
		select {
		case <-done:
			return
		case <-w.events:
		}
		batch = append(batch[:0], w.incr.B().Incr().Key("counter").Build())
	more:
		for len(batch) < 1024 {
			select {
			case <-w.events:
				batch = append(batch, w.incr.B().Incr().Key("counter").Build())
			default:
				break more
			}
		}
		w.incr.DoMulti(ctx, batch...)
	}
}

const channel = "__keyevent@0__:set"

// subscribe starts receiving set events, each of which becomes an INCR,
// and returns once the server counts the subscription.
func (w *worker) subscribe() error {
	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{w.addr}, DisableCache: true, DisableRetry: true})
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.sub = c
	w.mu.Unlock()
	w.pending.Add(1)
	go func() {
		defer w.pending.Done()
		ctx := context.Background()
		_ = c.Receive(ctx, c.B().Subscribe().Channel(channel).Build(), func(valkey.PubSubMessage) {
			w.events <- struct{}{}
		})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := w.incr.Do(context.Background(), w.incr.B().PubsubNumsub().Channel(channel).Build()).AsIntMap()
		if err == nil && n[channel] > 0 {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("the worker did not subscribe within 5s")
}

// restartIn drops the worker's subscription after d and subscribes again
// 100 ms later, as a deploy or a crash would: events published meanwhile
// are lost.
func (w *worker) restartIn(d time.Duration) {
	go func() {
		time.Sleep(d)
		w.mu.Lock()
		old := w.sub
		w.mu.Unlock()
		old.Close()
		time.Sleep(100 * time.Millisecond)
		if err := w.subscribe(); err != nil {
			fmt.Fprintln(os.Stderr, "notify worker:", err)
		}
	}()
}

// settle waits until the counter stops moving after a run and returns how
// long that took (the worker's lag) and how many of n increments never
// came (lost across the restart).
func (w *worker) settle(s *vtest.Server, n int) (time.Duration, int64) {
	start := time.Now()
	last, stableSince := int64(-1), time.Now()
	for {
		c, _ := s.Do("GET", "counter").AsInt64()
		if c == int64(n) {
			return time.Since(start), 0
		}
		if c != last {
			last, stableSince = c, time.Now()
		} else if time.Since(stableSince) > 500*time.Millisecond {
			return stableSince.Sub(start), int64(n) - c
		}
		time.Sleep(time.Millisecond)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is (max - min) / median, in percent.
func spread(v []float64) float64 {
	m := median(v)
	if m == 0 {
		return 0
	}
	return (slices.Max(v) - slices.Min(v)) / m * 100
}

func field(s []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(s))
	for i, x := range s {
		out[i] = f(x)
	}
	return out
}

// ratios returns, round by round, a's throughput over b's: both ran in the
// same round, so a slow spell of the machine weighs on both.
func ratios(a, b []sample) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		out[i] = a[i].rps / b[i].rps
	}
	return out
}

func report(scenarios []*scenario, results map[string]map[int][]sample, lags, lost []float64, rounds, requests int) {
	fmt.Printf("\n%d rounds, %d requests a run at -P 16 (%d at -P 1), %d clients, SET over %d random keys\n",
		rounds, requests, requests/4, clients, keyspace)
	fmt.Println("ratios are medians of the ratios within each round; spread is (max - min) / median")
	fmt.Println()
	for _, p := range []int{1, 16} {
		plain, floor, evalsha := results["plain"][p], results["floor"][p], results["evalsha"][p]
		fmt.Printf("| -P %d | scenario | ops/s (median) | spread | vs plain | vs floor | vs evalsha | p50 ms | p99 ms |\n", p)
		fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for i, sc := range scenarios {
			s := results[sc.name][p]
			rps := field(s, func(s sample) float64 { return s.rps })
			fmt.Printf("| %d | %s: %s | %.0f | %.0f%% | %.2f | %.2f | %.2f | %.3f | %.3f |\n", i+1, sc.name, sc.what,
				median(rps), spread(rps),
				median(ratios(s, plain)), median(ratios(s, floor)), median(ratios(s, evalsha)),
				median(field(s, func(s sample) float64 { return s.p50 })), median(field(s, func(s sample) float64 { return s.p99 })))
		}
		fmt.Println()
	}
	if len(lags) > 0 {
		fmt.Printf("notify worker at -P 16: lag after the run %.0f ms (median), increments lost across a restart %.0f of %d (median)\n\n",
			median(lags), median(lost), requests)
	}
	p16 := func(a, b string) float64 {
		if results[a] == nil || results[b] == nil {
			return 0
		}
		return median(ratios(results[a][16], results[b][16]))
	}
	goal("empty at -P 16 vs plain", p16("empty", "plain"), ">=", 0.95)
	goal("nomatch at -P 16 vs plain", p16("nomatch", "plain"), ">=", 0.95)
	fmt.Printf("  (nomatch vs subscribed, its floor: %.2f)\n", p16("nomatch", "subscribed"))
	goal("trigger at -P 16 vs floor", p16("trigger", "floor"), ">=", 0.85)
	goal("trigger at -P 16 vs evalsha", p16("trigger", "evalsha"), ">=", 1.0)
	fmt.Println()
}

// goal prints whether a measured figure meets its goal.
func goal(what string, got float64, op string, want float64) {
	met := got >= want
	if op == "<=" {
		met = got <= want
	}
	verdict := "not met"
	if met {
		verdict = "met"
	}
	fmt.Printf("goal: %s %.2f, want %s %.2f: %s\n", what, got, op, want, verdict)
}

// reportRouter summarises the router benchmarks make bench ran before,
// from BENCH_ROUTER_FILE; each -count pass ran the three sizes in a row,
// so their ratios are taken pass by pass.
func reportRouter() {
	f, err := os.Open(os.Getenv("BENCH_ROUTER_FILE"))
	if err != nil {
		fmt.Println("router: run through make bench for the lookup figures")
		return
	}
	defer f.Close()
	ns := map[string][]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 4 && strings.HasPrefix(fields[0], "BenchmarkLookup/patterns=") && fields[3] == "ns/op" {
			name := strings.Split(strings.TrimPrefix(fields[0], "BenchmarkLookup/patterns="), "-")[0]
			v, _ := strconv.ParseFloat(fields[2], 64)
			ns[name] = append(ns[name], v)
		}
	}
	small := ns["100"]
	if len(small) == 0 {
		fmt.Println("router: no figures in", f.Name())
		return
	}
	fmt.Println("| router lookup | ns (median) | spread | vs 100 patterns |")
	fmt.Println("| --- | ---: | ---: | ---: |")
	for _, n := range []string{"100", "10000", "100000"} {
		var r []float64
		for i := range min(len(ns[n]), len(small)) {
			r = append(r, ns[n][i]/small[i])
		}
		fmt.Printf("| %s patterns | %.1f | %.0f%% | %.2f |\n", n, median(ns[n]), spread(ns[n]), median(r))
		if n == "100000" {
			defer goal("router lookup at 100k patterns vs 100", median(r), "<=", 2)
			defer goal("router lookup at 100k patterns, ns", median(ns[n]), "<=", 1000)
		}
	}
	fmt.Println()
}

// reportMemory measures the RSS 100,000 triggers add to a server, once the
// collection that follows a big install has given the garbage back.
func reportMemory(b *testing.B) {
	s := vtest.Start(b, vtest.Options{})
	before := info(s, "memory", "used_memory_rss")
	cycles := info(s, "iungo", "iungo_go_gc_cycles")
	s.MustDo("IUNGO", "RESTORE", string(config.Encode(manyTriggers(100_000, 100, "mem"))))
	s.MustDo("SET", "mem:5:x", "v") // the triggers work
	if got, _ := s.Do("GET", "counter").AsInt64(); got != 1 {
		b.Fatalf("mem:5:x fired %d triggers, want 1", got)
	}
	vtest.Eventually(b, 30*time.Second, "a garbage collection after the install",
		func() bool { return info(s, "iungo", "iungo_go_gc_cycles") > cycles })
	// The pages go back to the OS right after that collection.
	after := info(s, "memory", "used_memory_rss")
	for range 20 {
		time.Sleep(250 * time.Millisecond)
		now := info(s, "memory", "used_memory_rss")
		if now >= after*0.99 {
			break
		}
		after = now
	}
	heap := info(s, "iungo", "iungo_go_heap_bytes")
	fmt.Printf("memory: 100,000 triggers (100 scripts) add %.1f MB of RSS (%.1f -> %.1f MB); the Go heap holds %.1f MB\n",
		(after-before)/(1<<20), before/(1<<20), after/(1<<20), heap/(1<<20))
	goal("RSS of 100,000 triggers, MB", (after-before)/(1<<20), "<=", 64)
}

// info reads a numeric field of an INFO section.
func info(s *vtest.Server, section, field string) float64 {
	out, _ := s.Do("INFO", section).ToString()
	for _, line := range strings.Split(out, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	return 0
}
