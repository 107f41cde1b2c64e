// Command echo is the WebSocket echo backend of proxy-bound.sh: every data message comes back unchanged, on
// plain ws and on wss. It is multi-threaded (GOMAXPROCS) and cheap per message, so that the proxy in front of
// it, not the backend, limits the throughput being measured.
//
// Build in GOPATH mode against Debian's gorilla/websocket (no module downloads):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o echo ./benchmarks/go/echo
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// maxMessage bounds what one connection may make the backend buffer: the benchmark sends at most 16 KiB.
const maxMessage = 1 << 20

var upgrader = websocket.Upgrader{
	ReadBufferSize:  16 << 10,
	WriteBufferSize: 16 << 10,
	// Loopback benchmark peers only; the proxies forward whatever Origin the client sent.
	CheckOrigin: func(*http.Request) bool { return true },
}

func serveEcho(w http.ResponseWriter, r *http.Request) {
	// cluster.sh's fan-out: the backend subscribes the connection to the channels its query names, as a
	// Gatehouse backend does with the Gatehouse-Channels header of its 101.
	var header http.Header
	if channels := r.URL.Query().Get("channels"); channels != "" {
		header = http.Header{"Gatehouse-Channels": []string{channels}}
	}
	conn, err := upgrader.Upgrade(w, r, header)
	if err != nil {
		return // Upgrade has already answered with an HTTP error.
	}
	defer conn.Close()
	conn.SetReadLimit(maxMessage)
	for {
		kind, reader, err := conn.NextReader()
		if err != nil {
			return // Close frame, reset or read limit: the library answers a close frame itself.
		}
		writer, err := conn.NextWriter(kind)
		if err != nil {
			return
		}
		if _, err := io.Copy(writer, reader); err != nil {
			return
		}
		if err := writer.Close(); err != nil {
			return
		}
	}
}

func listen(addr string) net.Listener {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("listen %s: %v", addr, err)
	}
	return ln
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18120", "plain ws listen address")
	tlsAddr := flag.String("tls-addr", "", "wss listen address (needs -cert and -key)")
	certFile := flag.String("cert", "", "PEM certificate for -tls-addr")
	keyFile := flag.String("key", "", "PEM private key for -tls-addr")
	procs := flag.Int("procs", 0, "GOMAXPROCS (0: Go's default, one per core)")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", serveEcho)
	newServer := func() *http.Server {
		// Timeouts bound the handshake; hijacked WebSocket connections are no longer the server's.
		return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	}

	errs := make(chan error, 2)
	go func() { errs <- newServer().Serve(listen(*addr)) }()
	if *tlsAddr != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			log.Fatalf("certificate: %v", err)
		}
		server := newServer()
		// HTTP/1.1 only: a WebSocket upgrade needs it.
		server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
		go func() { errs <- server.ServeTLS(listen(*tlsAddr), "", "") }()
	}
	fmt.Fprintf(os.Stderr, "echo: ws on %s, wss on %q, GOMAXPROCS %d\n", *addr, *tlsAddr, runtime.GOMAXPROCS(0))

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-signals:
		fmt.Fprintf(os.Stderr, "echo: %v, exiting\n", sig)
	case err := <-errs:
		log.Fatalf("serve: %v", err)
	}
}
