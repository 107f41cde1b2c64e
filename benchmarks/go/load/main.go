// Command load is the load generator of proxy-bound.sh: WebSocket clients on loopback, cheaper per message than
// the proxies they measure. One JSON object on stdout per run.
//
// Modes:
//
//	echo       N connections, one message of S bytes in flight on each; -rate 0 sends the next message as soon
//	           as the echo arrives (saturated), -rate R offers R echoes/s in all, spread evenly over the
//	           connections (paced). Reports echoes/s, latency percentiles and, with -watch, the CPU time the
//	           watched processes spent in the measured window.
//	handshake  K loops of: new TCP connection (+ TLS for wss), WebSocket upgrade, close handshake, close.
//	           Every TLS handshake is a full one, unless -resume: then each loop keeps its own client session
//	           cache, so after its first handshake the next ones resume (TLS 1.3 PSK or TLS 1.2 ticket); the
//	           measured handshakes that did resume are counted (resumed).
//	idle       Opens N WebSockets and holds them; reports the watched processes' RSS before and while held.
//	           With -burst B, each connection first sends one binary message of B random bytes and checks its
//	           echo, then idles: what the proxies keep per connection after one large message.
//
// Every loop is bounded by -duration (or -hold) plus a few seconds of grace, so the process always ends.
//
// Build in GOPATH mode against Debian's gorilla/websocket (no module downloads):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o load ./benchmarks/go/load
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/bits"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Phases of a measured run: workers count echoes throughout, latencies only while measuring.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// grace is how long a run may overrun its window before stalled connections count as errors.
const grace = 3 * time.Second

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux architecture Go
// supports without cgo.
const clockTicks = 100

type config struct {
	mode        string
	url         string
	caFile      string
	conns       int
	size        int
	duration    time.Duration
	warmup      time.Duration
	rate        float64
	parallel    int
	hold        time.Duration
	settle      time.Duration
	concurrency int
	burst       int
	watch       []int
	watchOther  []int
	readyFile   string
	urls        []string
	publish     string
	broadcasts  int
	resume      bool
}

// result is the JSON printed on stdout; fields that do not apply to a mode are omitted.
type result struct {
	Mode             string             `json:"mode"`
	URL              string             `json:"url"`
	Connections      int                `json:"connections,omitempty"`
	MessageBytes     int                `json:"messageBytes,omitempty"`
	OfferedRate      float64            `json:"offeredRate,omitempty"`
	WindowSeconds    float64            `json:"windowSeconds,omitempty"`
	Messages         uint64             `json:"messages,omitempty"`
	MessagesPerSec   float64            `json:"messagesPerSecond,omitempty"`
	Late             uint64             `json:"late,omitempty"`
	Parallel         int                `json:"parallel,omitempty"`
	Handshakes       uint64             `json:"handshakes,omitempty"`
	Resumed          *uint64            `json:"resumed,omitempty"`
	HandshakesPerSec float64            `json:"handshakesPerSecond,omitempty"`
	LatencyMicros    map[string]float64 `json:"latencyMicros,omitempty"`
	Errors           uint64             `json:"errors"`
	FirstError       string             `json:"firstError,omitempty"`
	WatchedCPU       *float64           `json:"watchedCPUSeconds,omitempty"`
	OtherCPU         *float64           `json:"otherCPUSeconds,omitempty"`
	ClientCPU        float64            `json:"clientCPUSeconds"`
	ClientWindowCPU  *float64           `json:"clientWindowCPUSeconds,omitempty"`
	Opened           int                `json:"opened,omitempty"`
	BurstBytes       *int               `json:"burstBytes,omitempty"`
	RSSBeforeKiB     *int64             `json:"rssBeforeKiB,omitempty"`
	RSSHeldKiB       *int64             `json:"rssHeldKiB,omitempty"`
	RSSPerConnKiB    *float64           `json:"rssPerConnectionKiB,omitempty"`
	GOMAXPROCS       int                `json:"gomaxprocs"`
	// fanout: per broadcast, milliseconds from the POST to the last delivery and the admin API's answer time.
	FanoutLastMillis   []float64 `json:"fanoutLastMillis,omitempty"`
	FanoutMedianMillis []float64 `json:"fanoutMedianMillis,omitempty"`
	PublishMillis      []float64 `json:"publishMillis,omitempty"`
}

func main() {
	cfg := parseFlags()
	var res result
	var err error
	switch cfg.mode {
	case "echo":
		res, err = runEcho(cfg)
	case "handshake":
		res, err = runHandshake(cfg)
	case "idle":
		res, err = runIdle(cfg)
	case "fanout":
		res, err = runFanout(cfg)
	default:
		err = fmt.Errorf("unknown -mode %q (echo, handshake, idle, fanout)", cfg.mode)
	}
	if err != nil {
		log.Fatalf("load: %v", err)
	}
	res.Mode, res.URL, res.GOMAXPROCS = cfg.mode, cfg.url, runtime.GOMAXPROCS(0)
	res.ClientCPU = ownCPUSeconds()
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	summary(res)
	if res.Errors > 0 {
		os.Exit(2)
	}
}

func parseFlags() config {
	var cfg config
	var watch, watchOther string
	var duration, warmup, hold, settle float64
	var procs int
	flag.StringVar(&cfg.mode, "mode", "echo", "echo, handshake, idle or fanout")
	var urls string
	flag.StringVar(&urls, "urls", "", "fanout: comma-separated ws:// URLs the connections are spread over")
	flag.StringVar(&cfg.publish, "publish", "", "fanout: admin URL to POST each broadcast to")
	flag.IntVar(&cfg.broadcasts, "broadcasts", 5, "fanout: broadcasts to time")
	flag.StringVar(&cfg.url, "url", "", "ws:// or wss:// URL on loopback")
	flag.StringVar(&cfg.caFile, "ca", "", "PEM CA for wss (default: no certificate verification)")
	flag.IntVar(&cfg.conns, "conns", 50, "connections (echo, idle)")
	flag.IntVar(&cfg.size, "size", 64, "message bytes (echo)")
	flag.Float64Var(&duration, "duration", 10, "measured seconds (echo, handshake)")
	flag.Float64Var(&warmup, "warmup", 1, "seconds before the measured window (echo, handshake)")
	flag.Float64Var(&cfg.rate, "rate", 0, "echo: offered echoes/s over all connections; 0 = saturated")
	flag.IntVar(&cfg.parallel, "parallel", 20, "handshake loops in parallel")
	flag.BoolVar(&cfg.resume, "resume", false, "handshake: a TLS session cache per loop, so handshakes after its first resume")
	flag.Float64Var(&hold, "hold", 2, "idle: seconds to hold the connections once open")
	flag.Float64Var(&settle, "settle", 1, "idle: seconds between the last open and the RSS reading")
	flag.IntVar(&cfg.concurrency, "concurrency", 100, "idle: handshakes at a time while opening")
	flag.IntVar(&cfg.burst, "burst", 0, "idle: bytes of one binary message each connection sends (and gets back) once open; 0 = none")
	flag.StringVar(&watch, "watch", "", "comma-separated pids whose CPU (with descendants) is the proxy's")
	flag.StringVar(&watchOther, "watch-other", "", "comma-separated pids whose CPU is reported separately (backend)")
	flag.StringVar(&cfg.readyFile, "ready-file", "", "idle: file written once every connection is open")
	flag.IntVar(&procs, "procs", 0, "GOMAXPROCS (0: Go's default)")
	flag.Parse()
	if urls != "" {
		cfg.urls = strings.Split(urls, ",")
		if cfg.url == "" {
			cfg.url = cfg.urls[0]
		}
	}

	u, err := url.Parse(cfg.url)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		log.Fatalf("load: -url must be ws:// or wss://, got %q", cfg.url)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		log.Fatalf("load: %q is not a loopback address; this tool only loads loopback targets", u.Hostname())
	}
	if cfg.conns < 1 || cfg.conns > 100000 || cfg.size < 1 || cfg.size > 1<<20 || cfg.parallel < 1 || cfg.parallel > 10000 ||
		cfg.concurrency < 1 || duration <= 0 || duration > 3600 || warmup < 0 || warmup > 600 || hold < 0 || hold > 3600 ||
		settle < 0 || settle > 600 || cfg.rate < 0 || cfg.burst < 0 || cfg.burst > 1<<20 {
		log.Fatalf("load: a numeric flag is out of range")
	}
	cfg.duration = seconds(duration)
	cfg.warmup = seconds(warmup)
	cfg.hold = seconds(hold)
	cfg.settle = seconds(settle)
	cfg.watch = parsePids(watch)
	cfg.watchOther = parsePids(watchOther)
	if procs > 0 {
		runtime.GOMAXPROCS(procs)
	}
	return cfg
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func parsePids(list string) []int {
	var pids []int
	for _, field := range strings.Split(list, ",") {
		if field = strings.TrimSpace(field); field == "" {
			continue
		}
		pid, err := strconv.Atoi(field)
		if err != nil || pid <= 0 {
			log.Fatalf("load: bad pid %q", field)
		}
		pids = append(pids, pid)
	}
	return pids
}

func dialer(cfg config, bufferBytes int) (*websocket.Dialer, error) {
	tlsConfig := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Classic groups, the ones every proxy here can do; no session cache, so every handshake is a full one
		// (handshake -resume gives each loop a cache of its own).
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	}
	if cfg.caFile != "" {
		pem, err := os.ReadFile(cfg.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", cfg.caFile)
		}
		tlsConfig.RootCAs = pool
	} else {
		tlsConfig.InsecureSkipVerify = true
	}
	return &websocket.Dialer{
		NetDial:          (&net.Dialer{Timeout: 10 * time.Second}).Dial,
		HandshakeTimeout: 10 * time.Second,
		TLSClientConfig:  tlsConfig,
		ReadBufferSize:   bufferBytes,
		WriteBufferSize:  bufferBytes,
	}, nil
}

// errorLog counts errors and keeps the first one's text.
type errorLog struct {
	count atomic.Uint64
	once  sync.Once
	first string
}

func (e *errorLog) add(err error) {
	e.count.Add(1)
	e.once.Do(func() { e.first = err.Error() })
}

// --- echo --------------------------------------------------------------------------------------------------------

func runEcho(cfg config) (result, error) {
	dial, err := dialer(cfg, cfg.size+64)
	if err != nil {
		return result{}, err
	}
	conns := make([]*websocket.Conn, cfg.conns)
	var dialErrs errorLog
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := dial.Dial(cfg.url, nil)
			if err != nil {
				dialErrs.add(err)
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	if n := dialErrs.count.Load(); n > 0 {
		closeAll(conns)
		return result{}, fmt.Errorf("%d of %d connections failed: %s", n, cfg.conns, dialErrs.first)
	}

	var phase atomic.Int32
	var done atomic.Uint64
	var late atomic.Uint64
	var errs errorLog
	hists := make([]histogram, cfg.conns)
	start := time.Now()
	deadline := start.Add(cfg.warmup + cfg.duration + grace)
	var interval time.Duration
	if cfg.rate > 0 {
		interval = time.Duration(float64(cfg.conns) / cfg.rate * float64(time.Second))
	}
	for i, c := range conns {
		wg.Add(1)
		go func(i int, c *websocket.Conn) {
			defer wg.Done()
			// Paced connections start evenly staggered over one interval.
			first := start.Add(interval * time.Duration(i) / time.Duration(cfg.conns))
			if err := echoLoop(c, cfg.size, interval, first, deadline, &phase, &done, &late, &hists[i]); err != nil {
				errs.add(err)
			}
		}(i, c)
	}

	time.Sleep(cfg.warmup)
	cpu0, other0, own0 := cpuOf(cfg.watch), cpuOf(cfg.watchOther), ownCPUSeconds()
	n0, t0 := done.Load(), time.Now()
	phase.Store(phaseMeasure)
	time.Sleep(cfg.duration)
	phase.Store(phaseStop)
	n1, t1 := done.Load(), time.Now()
	cpu1, other1, own1 := cpuOf(cfg.watch), cpuOf(cfg.watchOther), ownCPUSeconds()
	ownWindow := own1 - own0
	wg.Wait()
	closeAll(conns)

	var all histogram
	for i := range hists {
		all.merge(&hists[i])
	}
	window := t1.Sub(t0).Seconds()
	res := result{
		Connections: cfg.conns, MessageBytes: cfg.size, OfferedRate: cfg.rate,
		WindowSeconds: window, Messages: n1 - n0, MessagesPerSec: float64(n1-n0) / window, Late: late.Load(),
		LatencyMicros: all.percentiles(), Errors: errs.count.Load(), FirstError: errs.first,
		WatchedCPU: diff(cpu0, cpu1), OtherCPU: diff(other0, other1), ClientWindowCPU: &ownWindow,
	}
	return res, nil
}

// echoLoop sends one message, waits for its echo, checks it, and repeats until the stop phase. With a non-zero
// interval it sends on a fixed schedule instead (one message in flight at most); a connection that falls more
// than one interval behind skips ahead rather than bursting, and counts as late.
func echoLoop(c *websocket.Conn, size int, interval time.Duration, next, deadline time.Time,
	phase *atomic.Int32, done, late *atomic.Uint64, hist *histogram) error {
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	if err := c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	reply := make([]byte, size+1)
	for seq := uint64(0); phase.Load() != phaseStop; seq++ {
		if interval > 0 {
			if wait := time.Until(next); wait > 0 {
				time.Sleep(wait)
				if phase.Load() == phaseStop {
					break
				}
			}
			next = next.Add(interval)
			if behind := time.Since(next); behind > interval {
				late.Add(1)
				next = time.Now()
			}
		}
		if size >= 8 {
			binary.LittleEndian.PutUint64(payload, seq)
		}
		sent := time.Now()
		if err := c.WriteMessage(websocket.BinaryMessage, payload); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		kind, r, err := c.NextReader()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		// Reading one byte more than was sent proves the echo is exactly as long as the message.
		n, err := io.ReadFull(r, reply)
		if kind != websocket.BinaryMessage || n != size || !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("echo of %d bytes came back as %d bytes (type %d, %v)", size, n, kind, err)
		}
		if !bytes.Equal(reply[:size], payload) {
			return fmt.Errorf("echo %d differs from the message sent", seq)
		}
		if phase.Load() == phaseMeasure {
			hist.record(time.Since(sent))
		}
		done.Add(1)
	}
	// A clean close, answered within the grace period or abandoned.
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
		time.Now().Add(time.Second))
	return nil
}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// --- handshake ---------------------------------------------------------------------------------------------------

func runHandshake(cfg config) (result, error) {
	dial, err := dialer(cfg, 4096)
	if err != nil {
		return result{}, err
	}
	if cfg.resume && !strings.HasPrefix(cfg.url, "wss:") {
		return result{}, fmt.Errorf("-resume needs a wss:// URL")
	}
	var phase atomic.Int32
	var done, resumed atomic.Uint64
	var errs errorLog
	hists := make([]histogram, cfg.parallel)
	end := time.Now().Add(cfg.warmup + cfg.duration + grace)
	var wg sync.WaitGroup
	for i := 0; i < cfg.parallel; i++ {
		loopDial := dial
		if cfg.resume {
			// A session cache per loop: each loop's first handshake is a full one, and the loop then resumes
			// with the ticket the server sent on its latest connection (the websocket dialer clones this config,
			// cache pointer included).
			own := *dial
			own.TLSClientConfig = dial.TLSClientConfig.Clone()
			own.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			loopDial = &own
		}
		wg.Add(1)
		go func(dial *websocket.Dialer, hist *histogram) {
			defer wg.Done()
			for phase.Load() != phaseStop && time.Now().Before(end) {
				began := time.Now()
				c, _, err := dial.Dial(cfg.url, nil)
				if err != nil {
					errs.add(err)
					time.Sleep(10 * time.Millisecond) // no busy loop against a refusing server
					continue
				}
				opened := time.Since(began)
				didResume := false
				if t, ok := c.UnderlyingConn().(*tls.Conn); ok {
					didResume = t.ConnectionState().DidResume
				}
				if err := closeHandshake(c); err != nil {
					errs.add(err)
					continue
				}
				// done and resumed both count every handshake (warm-up included); the window's are differences
				// of the two, read with the phase change.
				if phase.Load() == phaseMeasure {
					hist.record(opened)
				}
				if didResume {
					resumed.Add(1)
				}
				done.Add(1)
			}
		}(loopDial, &hists[i])
	}
	time.Sleep(cfg.warmup)
	cpu0, other0, own0 := cpuOf(cfg.watch), cpuOf(cfg.watchOther), ownCPUSeconds()
	n0, r0, t0 := done.Load(), resumed.Load(), time.Now()
	phase.Store(phaseMeasure)
	time.Sleep(cfg.duration)
	phase.Store(phaseStop)
	n1, r1, t1 := done.Load(), resumed.Load(), time.Now()
	cpu1, other1, own1 := cpuOf(cfg.watch), cpuOf(cfg.watchOther), ownCPUSeconds()
	ownWindow := own1 - own0
	wg.Wait()

	var all histogram
	for i := range hists {
		all.merge(&hists[i])
	}
	window := t1.Sub(t0).Seconds()
	res := result{
		Parallel: cfg.parallel, WindowSeconds: window, Handshakes: n1 - n0, HandshakesPerSec: float64(n1-n0) / window,
		LatencyMicros: all.percentiles(), Errors: errs.count.Load(), FirstError: errs.first,
		WatchedCPU: diff(cpu0, cpu1), OtherCPU: diff(other0, other1), ClientWindowCPU: &ownWindow,
	}
	if cfg.resume {
		// A pointer, so that 0 (nothing resumed) still shows in the JSON.
		n := r1 - r0
		res.Resumed = &n
	}
	return res, nil
}

// closeHandshake sends a close frame, waits (bounded) for the peer's, then closes the connection.
func closeHandshake(c *websocket.Conn) error {
	defer c.Close()
	limit := time.Now().Add(grace)
	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), limit); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := c.SetReadDeadline(limit); err != nil {
		return err
	}
	for {
		if _, _, err := c.NextReader(); err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return nil
			}
			return fmt.Errorf("close: %w", err)
		}
	}
}

// --- idle --------------------------------------------------------------------------------------------------------

// burstTime bounds the whole burst phase of idle -burst: every message out and its echo back.
const burstTime = 20 * time.Second

func runIdle(cfg config) (result, error) {
	dial, err := dialer(cfg, 4096)
	if err != nil {
		return result{}, err
	}
	var ready func(i int, c *websocket.Conn) error
	if cfg.burst > 0 {
		// The message goes out as one frame: a write buffer that holds it, from a pool, so the connections do
		// not each keep one while idle.
		dial.WriteBufferSize = cfg.burst + 64
		dial.WriteBufferPool = &sync.Pool{}
		deadline := time.Now().Add(burstTime)
		seed := time.Now().UnixNano()
		ready = func(i int, c *websocket.Conn) error { return burst(c, cfg.burst, seed+int64(i), deadline) }
	}
	before := rssOf(cfg.watch)
	var errs errorLog
	// openAll returns once every connection is open and, with -burst, has had its echo: the RSS reading below
	// comes after all of them.
	conns := openAll(dial, []string{cfg.url}, cfg.conns, cfg.concurrency, &errs, ready)
	opened := len(conns)
	time.Sleep(cfg.settle)
	held := rssOf(cfg.watch)
	if cfg.readyFile != "" {
		if err := os.WriteFile(cfg.readyFile, []byte(strconv.Itoa(opened)+"\n"), 0o644); err != nil {
			closeAll(conns)
			return result{}, err
		}
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-time.After(cfg.hold):
	case <-signals:
	}
	closeAll(conns)

	res := result{Connections: cfg.conns, Opened: opened, Errors: errs.count.Load(), FirstError: errs.first,
		RSSBeforeKiB: before, RSSHeldKiB: held}
	if cfg.burst > 0 {
		res.BurstBytes = &cfg.burst
	}
	if before != nil && held != nil && opened > 0 {
		perConn := float64(*held-*before) / float64(opened)
		res.RSSPerConnKiB = &perConn
	}
	return res, nil
}

// burst sends one binary message of size random bytes on c, waits for its echo and checks its length and bytes,
// all before deadline; the connection is then left without deadlines, to idle.
func burst(c *websocket.Conn, size int, seed int64, deadline time.Time) error {
	if err := c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return err
	}
	payload := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(payload)
	if err := c.WriteMessage(websocket.BinaryMessage, payload); err != nil {
		return fmt.Errorf("burst write: %w", err)
	}
	kind, r, err := c.NextReader()
	if err != nil {
		return fmt.Errorf("burst read: %w", err)
	}
	// Reading one byte more than was sent proves the echo is exactly as long as the message.
	reply := make([]byte, size+1)
	n, err := io.ReadFull(r, reply)
	if kind != websocket.BinaryMessage || n != size || !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("burst echo of %d bytes came back as %d bytes (type %d, %v)", size, n, kind, err)
	}
	if !bytes.Equal(reply[:size], payload) {
		return fmt.Errorf("burst echo differs from the message sent")
	}
	if err := c.SetWriteDeadline(time.Time{}); err != nil {
		return err
	}
	return c.SetReadDeadline(time.Time{})
}

// --- /proc -------------------------------------------------------------------------------------------------------

type procInfo struct {
	ppid       int
	cpuSeconds float64
}

// processes reads every process's parent and CPU time from /proc/*/stat.
func processes() map[int]procInfo {
	all := map[int]procInfo{}
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // the process has exited
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses: the fields start after its last ')'.
		end := bytes.LastIndexByte(data, ')')
		if end < 0 {
			continue
		}
		fields := strings.Fields(string(data[end+1:]))
		if len(fields) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		utime, _ := strconv.ParseFloat(fields[11], 64)
		stime, _ := strconv.ParseFloat(fields[12], 64)
		all[pid] = procInfo{ppid: ppid, cpuSeconds: (utime + stime) / clockTicks}
	}
	return all
}

// family is the given pids and all their descendants (nginx's workers are its master's children).
func family(pids []int, all map[int]procInfo) []int {
	in := map[int]bool{}
	for _, pid := range pids {
		if _, ok := all[pid]; ok {
			in[pid] = true
		}
	}
	for grew := true; grew; {
		grew = false
		for pid, info := range all {
			if !in[pid] && in[info.ppid] {
				in[pid] = true
				grew = true
			}
		}
	}
	out := make([]int, 0, len(in))
	for pid := range in {
		out = append(out, pid)
	}
	return out
}

func cpuOf(pids []int) *float64 {
	if len(pids) == 0 {
		return nil
	}
	all := processes()
	total := 0.0
	for _, pid := range family(pids, all) {
		total += all[pid].cpuSeconds
	}
	return &total
}

// rssOf sums VmRSS over the pids and their descendants, in KiB.
func rssOf(pids []int) *int64 {
	if len(pids) == 0 {
		return nil
	}
	var total int64
	for _, pid := range family(pids, processes()) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				fields := strings.Fields(line)
				if len(fields) >= 2 {
					kib, _ := strconv.ParseInt(fields[1], 10, 64)
					total += kib
				}
			}
		}
	}
	return &total
}

func diff(a, b *float64) *float64 {
	if a == nil || b == nil {
		return nil
	}
	d := *b - *a
	return &d
}

func ownCPUSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e9
}

// --- latency histogram -------------------------------------------------------------------------------------------

// histogram is log-linear over nanoseconds: exact below 64 ns, then 64 buckets per power of two (1.6% wide).
// Fixed size, so recording never allocates and memory is bounded whatever the run length.
type histogram struct {
	counts [64 + 64*58]uint64
	total  uint64
	max    time.Duration
}

func bucketOf(ns uint64) int {
	if ns < 64 {
		return int(ns)
	}
	shift := bits.Len64(ns) - 7
	return 64 + shift*64 + int(ns>>uint(shift)-64)
}

func lowerBound(bucket int) uint64 {
	if bucket < 64 {
		return uint64(bucket)
	}
	shift := (bucket - 64) / 64
	return uint64((bucket-64)%64+64) << uint(shift)
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	b := bucketOf(uint64(d))
	if b >= len(h.counts) {
		b = len(h.counts) - 1
	}
	h.counts[b]++
	h.total++
	if d > h.max {
		h.max = d
	}
}

func (h *histogram) merge(o *histogram) {
	for i, n := range o.counts {
		h.counts[i] += n
	}
	h.total += o.total
	if o.max > h.max {
		h.max = o.max
	}
}

func (h *histogram) percentiles() map[string]float64 {
	out := map[string]float64{}
	if h.total == 0 {
		return out
	}
	quantiles := map[string]float64{"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999}
	names := make([]string, 0, len(quantiles))
	for name := range quantiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		rank := uint64(math.Ceil(quantiles[name] * float64(h.total)))
		var seen uint64
		for b, n := range h.counts {
			seen += n
			if seen >= rank {
				// The bucket's midpoint: half a bucket width of error at most.
				lo, hi := lowerBound(b), lowerBound(b+1)
				out[name] = math.Round(float64(lo+hi)/2/10) / 100
				break
			}
		}
	}
	out["max"] = math.Round(float64(h.max)/10) / 100
	return out
}

func summary(r result) {
	switch r.Mode {
	case "echo":
		fmt.Fprintf(os.Stderr, "load: %s %d conns %d B: %.0f msgs/s p50 %.0f µs p99 %.0f µs errors %d\n",
			r.URL, r.Connections, r.MessageBytes, r.MessagesPerSec, r.LatencyMicros["p50"], r.LatencyMicros["p99"], r.Errors)
	case "handshake":
		resumed := ""
		if r.Resumed != nil {
			resumed = fmt.Sprintf(" resumed %d/%d", *r.Resumed, r.Handshakes)
		}
		fmt.Fprintf(os.Stderr, "load: %s %d parallel: %.0f handshakes/s p99 %.0f µs%s errors %d\n",
			r.URL, r.Parallel, r.HandshakesPerSec, r.LatencyMicros["p99"], resumed, r.Errors)
	case "idle":
		burst := ""
		if r.BurstBytes != nil {
			burst = fmt.Sprintf(" after one %d B message each", *r.BurstBytes)
		}
		fmt.Fprintf(os.Stderr, "load: %s %d/%d idle conns open%s, errors %d\n", r.URL, r.Opened, r.Connections, burst, r.Errors)
	case "fanout":
		fmt.Fprintf(os.Stderr, "load: %d/%d subscribers; last delivery ms %v; median ms %v; POST answered ms %v; errors %d\n",
			r.Opened, r.Connections, r.FanoutLastMillis, r.FanoutMedianMillis, r.PublishMillis, r.Errors)
	}
	if r.FirstError != "" {
		fmt.Fprintf(os.Stderr, "load: first error: %s\n", r.FirstError)
	}
}

// --- fanout ------------------------------------------------------------------------------------------------------

// runFanout opens cfg.conns connections spread over cfg.urls (each subscribed to a channel by the backend), then
// POSTs cfg.broadcasts messages to cfg.publish one after another and times, for each, the last and the median
// delivery over every connection, from just before the POST.
func runFanout(cfg config) (result, error) {
	if len(cfg.urls) == 0 || cfg.publish == "" {
		return result{}, fmt.Errorf("fanout needs -urls and -publish")
	}
	dial, err := dialer(cfg, 4096)
	if err != nil {
		return result{}, err
	}
	var errs errorLog
	open := openAll(dial, cfg.urls, cfg.conns, cfg.concurrency, &errs, nil)
	defer closeAll(open)
	res := result{Connections: cfg.conns, Opened: len(open)}
	// Subscriptions reach the registry within a batch; the local ones are immediate.
	time.Sleep(cfg.settle)
	client := &http.Client{Timeout: 30 * time.Second}
	for b := 0; b < cfg.broadcasts; b++ {
		received := make([]time.Duration, len(open))
		var got sync.WaitGroup
		start := time.Now()
		for i, c := range open {
			got.Add(1)
			go func(i int, c *websocket.Conn) {
				defer got.Done()
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				if _, _, err := c.ReadMessage(); err != nil {
					errs.add(err)
					received[i] = -1
					return
				}
				received[i] = time.Since(start)
			}(i, c)
		}
		request, _ := http.NewRequest("POST", cfg.publish, strings.NewReader(fmt.Sprintf("tick %d", b)))
		request.Header.Set("Content-Type", "text/plain")
		request.Header.Set("Gatehouse-Admin", "1")
		posted := time.Now()
		response, err := client.Do(request)
		if err != nil {
			return res, err
		}
		io.Copy(io.Discard, response.Body)
		response.Body.Close()
		res.PublishMillis = append(res.PublishMillis, float64(time.Since(posted).Microseconds())/1000)
		got.Wait()
		var times []float64
		for _, d := range received {
			if d >= 0 {
				times = append(times, float64(d.Microseconds())/1000)
			}
		}
		sort.Float64s(times)
		if len(times) > 0 {
			res.FanoutLastMillis = append(res.FanoutLastMillis, times[len(times)-1])
			res.FanoutMedianMillis = append(res.FanoutMedianMillis, times[len(times)/2])
		}
	}
	res.Errors, res.FirstError = errs.count.Load(), errs.first
	return res, nil
}

// openAll opens n connections spread round-robin over urls, at most concurrency handshakes at a time; it returns
// those that opened (failures go to errs). A non-nil ready runs on each connection as soon as it opens (within
// the same concurrency limit); a connection it fails is closed and counts as a failure.
func openAll(dial *websocket.Dialer, urls []string, n, concurrency int, errs *errorLog,
	ready func(i int, c *websocket.Conn) error) []*websocket.Conn {
	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := dial.Dial(urls[i%len(urls)], nil)
			if err != nil {
				errs.add(err)
				return
			}
			if ready != nil {
				if err := ready(i, c); err != nil {
					errs.add(err)
					c.Close()
					return
				}
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	var open []*websocket.Conn
	for _, c := range conns {
		if c != nil {
			open = append(open, c)
		}
	}
	return open
}
