// yamux_peer: an independent yamux (protocol version 0) peer for mxd's
// interoperability tests, built on hashicorp/yamux as packaged by Debian
// (git df201c7, 2019).  Build with scripts/build-go.sh tests/interop/yamux_peer.go OUTPUT_PATH.
//
//	yamux_peer -listen 127.0.0.1:0 | -dial HOST:PORT
//	           -role server|client -mode echo|drive
//	           [-streams N] [-bytes B] [-seed S] [-timeout 120s]
//
// With -listen, prints "LISTEN <port>" on stdout and accepts one connection.
//
// Mode echo echoes every accepted stream until EOF, then half-closes it, and
// sends one ping.  When the session ends it prints
// "ECHO streams=<n> bytes=<n> resets=<n> ping=ok|fail goaway=0|1".
//
// Mode drive opens N concurrent streams; each writes B bytes of the generator
// below, verifies the echo, then half-closes and waits for the peer's FIN.
// It prints "DRIVE streams=<N> bytes_sent=<n> bytes_verified=<n>
// mismatches=<n> errors=<n>" and exits 0 when all is good, 1 otherwise.
// Streams are opened in index order: stream index i has id 1+2i (role
// client) or 2+2i (role server).
//
// Fatal errors: "ERROR <what>" on stderr, exit 2.  Global timeout: "ERROR
// timeout" on stderr, exit 3.
//
// Byte generator (reproducible by a C peer), all arithmetic uint32 wrapping:
//
//	state = seed*1000003 + streamIndex
//	per byte: state = state*1103515245 + 12345; byte = (state >> 16) & 0xff
//
// Caveat of this yamux version: Stream.Read returns EOF as soon as the local
// side has called Close (even before the peer's FIN), so every stream here
// reads all it expects before calling Close, and the peer's FIN/RST after our
// Close is observed by a tap that parses the frames arriving on the TCP
// connection.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/yamux"
)

var exitMu sync.Mutex

// exit serialises process exit so that a final result line and the global
// timeout cannot interleave.
func exit(code int) {
	exitMu.Lock()
	os.Exit(code)
}

func fatalf(format string, a ...interface{}) {
	exitMu.Lock()
	fmt.Fprintf(os.Stderr, "ERROR "+format+"\n", a...)
	os.Exit(2)
}

func logf(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "yamux_peer: "+format+"\n", a...)
}

// gen is the deterministic byte generator shared with the C tests.
type gen struct{ state uint32 }

func newGen(seed uint32, index uint32) *gen {
	return &gen{state: seed*1000003 + index}
}

func (g *gen) next() byte {
	g.state = g.state*1103515245 + 12345
	return byte(g.state >> 16)
}

func (g *gen) fill(b []byte) {
	for i := range b {
		b[i] = g.next()
	}
}

// remoteGoAwayFlag returns a pointer to the session's unexported
// remoteGoAway field (set atomically by the library when a normal Go Away
// arrives), or nil if this library version has no such field.
func remoteGoAwayFlag(s *yamux.Session) *int32 {
	f := reflect.ValueOf(s).Elem().FieldByName("remoteGoAway")
	if !f.IsValid() || f.Kind() != reflect.Int32 {
		return nil
	}
	return (*int32)(unsafe.Pointer(f.UnsafeAddr()))
}

// tapConn passes the connection through to yamux and parses the incoming
// frame stream on the side, recording per stream whether the peer sent FIN
// or RST, and any Go Away.  It sees a frame before yamux has processed it.
type tapConn struct {
	net.Conn
	mu     sync.Mutex
	hdr    [12]byte
	hn     int
	skip   uint32
	fin    map[uint32]bool
	rst    map[uint32]bool
	goaway int64 // -1: none, else the code of the first Go Away
	ended  bool  // read error / EOF on the connection
}

func newTap(c net.Conn) *tapConn {
	return &tapConn{Conn: c, fin: map[uint32]bool{}, rst: map[uint32]bool{}, goaway: -1}
}

func (t *tapConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	t.mu.Lock()
	p := b[:n]
	for len(p) > 0 {
		if t.skip > 0 {
			k := uint32(len(p))
			if k > t.skip {
				k = t.skip
			}
			t.skip -= k
			p = p[k:]
			continue
		}
		k := copy(t.hdr[t.hn:], p)
		t.hn += k
		p = p[k:]
		if t.hn < len(t.hdr) {
			break
		}
		t.hn = 0
		typ := t.hdr[1]
		flags := binary.BigEndian.Uint16(t.hdr[2:4])
		id := binary.BigEndian.Uint32(t.hdr[4:8])
		length := binary.BigEndian.Uint32(t.hdr[8:12])
		switch typ {
		case 0, 1: // Data, Window Update
			if flags&4 != 0 {
				t.fin[id] = true
			}
			if flags&8 != 0 {
				t.rst[id] = true
			}
			if typ == 0 {
				t.skip = length
			}
		case 3: // Go Away
			if t.goaway < 0 {
				t.goaway = int64(length)
			}
		}
	}
	if err != nil {
		t.ended = true
	}
	t.mu.Unlock()
	return n, err
}

// peerEnd reports what the peer has sent to end stream id.
func (t *tapConn) peerEnd(id uint32) (fin, rst, ended bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fin[id], t.rst[id], t.ended
}

func (t *tapConn) goAway() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.goaway
}

func main() {
	listen := flag.String("listen", "", "listen on ADDR (e.g. 127.0.0.1:0) and accept one connection")
	dial := flag.String("dial", "", "dial HOST:PORT")
	role := flag.String("role", "", "server|client: yamux side on the TCP connection (server = even stream ids)")
	mode := flag.String("mode", "", "echo|drive")
	nstreams := flag.Int("streams", 1, "drive: number of concurrent streams")
	nbytes := flag.Int64("bytes", 65536, "drive: bytes sent on each stream")
	seed := flag.Int64("seed", 1, "seed for data (taken modulo 2^32) and chunk sizes")
	timeout := flag.Duration("timeout", 120*time.Second, "global timeout; exit 3 when reached")
	finTimeout := flag.Duration("fin-timeout", 10*time.Second, "drive: how long to wait for the peer's FINs after ours")
	linger := flag.Duration("goaway-linger", time.Second, "echo: after a remote Go Away, close the session once no stream has been active for this long (0: wait for the peer to close)")
	backlog := flag.Int("backlog", 256, "yamux AcceptBacklog (also bounds our unanswered opens)")
	flag.Parse()

	if flag.NArg() != 0 {
		fatalf("usage: unexpected argument %q", flag.Arg(0))
	}
	if (*listen == "") == (*dial == "") {
		fatalf("usage: exactly one of -listen and -dial is required")
	}
	if *role != "server" && *role != "client" {
		fatalf("usage: -role must be server or client")
	}
	if *mode != "echo" && *mode != "drive" {
		fatalf("usage: -mode must be echo or drive")
	}
	if *mode == "drive" && (*nstreams < 1 || *nbytes < 0) {
		fatalf("usage: -streams must be >= 1 and -bytes >= 0")
	}
	if *backlog < 1 {
		fatalf("usage: -backlog must be >= 1")
	}

	if *timeout > 0 {
		time.AfterFunc(*timeout, func() {
			exitMu.Lock()
			fmt.Fprintln(os.Stderr, "ERROR timeout")
			os.Exit(3)
		})
	}

	var conn net.Conn
	var err error
	if *listen != "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			fatalf("listen %s: %v", *listen, err)
		}
		fmt.Fprintf(os.Stdout, "LISTEN %d\n", ln.Addr().(*net.TCPAddr).Port)
		os.Stdout.Sync()
		conn, err = ln.Accept()
		if err != nil {
			fatalf("accept: %v", err)
		}
		ln.Close()
	} else {
		conn, err = net.Dial("tcp", *dial)
		if err != nil {
			fatalf("dial %s: %v", *dial, err)
		}
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	tap := newTap(conn)

	cfg := yamux.DefaultConfig()
	cfg.AcceptBacklog = *backlog
	cfg.EnableKeepAlive = false
	cfg.ConnectionWriteTimeout = 30 * time.Second
	cfg.LogOutput = os.Stderr
	// MaxStreamWindowSize stays at the default 256 KiB.

	var sess *yamux.Session
	if *role == "server" {
		sess, err = yamux.Server(tap, cfg)
	} else {
		sess, err = yamux.Client(tap, cfg)
	}
	if err != nil {
		fatalf("yamux session: %v", err)
	}

	if *mode == "echo" {
		runEcho(sess, tap, *linger)
	} else {
		runDrive(sess, tap, *nstreams, *nbytes, uint32(*seed), *seed, *finTimeout)
	}
}

// ---------------------------------------------------------------- echo

func runEcho(sess *yamux.Session, tap *tapConn, linger time.Duration) {
	var (
		nstreams, nbytes, nresets int64
		active                    int64
		lastActivity              atomic.Value // time.Time
		wg                        sync.WaitGroup
	)
	lastActivity.Store(time.Now())
	goFlag := remoteGoAwayFlag(sess)

	// One ping from our side.
	pingDone := make(chan bool, 1)
	go func() {
		rtt, err := sess.Ping()
		if err != nil {
			logf("echo: ping failed: %v", err)
		} else {
			logf("echo: ping rtt %v", rtt)
		}
		pingDone <- err == nil
	}()

	// After a normal remote Go Away no new streams arrive; once the open
	// ones are done and the link has been idle for `linger`, end the session
	// ourselves unless the peer closes it first.
	if goFlag != nil && linger > 0 {
		go func() {
			var seen time.Time
			for !sess.IsClosed() {
				time.Sleep(50 * time.Millisecond)
				if atomic.LoadInt32(goFlag) == 0 {
					continue
				}
				if seen.IsZero() {
					seen = time.Now()
					logf("echo: remote Go Away received")
				}
				last := lastActivity.Load().(time.Time)
				if last.Before(seen) {
					last = seen
				}
				if atomic.LoadInt64(&active) == 0 && time.Since(last) >= linger {
					logf("echo: closing session after Go Away")
					sess.Close()
					return
				}
			}
		}()
	}

	var acceptErr error
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			acceptErr = err
			break
		}
		atomic.AddInt64(&nstreams, 1)
		atomic.AddInt64(&active, 1)
		lastActivity.Store(time.Now())
		wg.Add(1)
		go func(st *yamux.Stream) {
			defer wg.Done()
			defer func() {
				atomic.AddInt64(&active, -1)
				lastActivity.Store(time.Now())
			}()
			buf := make([]byte, 32*1024)
			for {
				n, rerr := st.Read(buf)
				if n > 0 {
					w, werr := st.Write(buf[:n])
					atomic.AddInt64(&nbytes, int64(w))
					if werr != nil {
						logf("echo: stream %d: write: %v", st.StreamID(), werr)
						atomic.AddInt64(&nresets, 1)
						return
					}
				}
				if rerr == io.EOF {
					st.Close() // half-close back: FIN
					return
				}
				if rerr != nil {
					logf("echo: stream %d: read: %v", st.StreamID(), rerr)
					atomic.AddInt64(&nresets, 1)
					return
				}
			}
		}(st)
	}
	logf("echo: session ended: %v", acceptErr)
	wg.Wait()

	goaway := 0
	if goFlag != nil && atomic.LoadInt32(goFlag) != 0 {
		goaway = 1
	}
	if code := tap.goAway(); code >= 0 {
		logf("echo: peer sent Go Away code %d", code)
		goaway = 1
	}
	if _, err := sess.OpenStream(); err == yamux.ErrRemoteGoAway {
		goaway = 1
	} else if err == nil {
		logf("echo: unexpected: OpenStream succeeded after session end")
	}
	if acceptErr != nil {
		// Go Away with an error code makes this library end the session.
		m := acceptErr.Error()
		if m == "yamux protocol error" || m == "remote yamux internal error" ||
			m == "unexpected go away received" {
			goaway = 1
		}
	}
	sess.Close()

	ping := "fail"
	if <-pingDone {
		ping = "ok"
	}
	exitMu.Lock()
	fmt.Fprintf(os.Stdout, "ECHO streams=%d bytes=%d resets=%d ping=%s goaway=%d\n",
		atomic.LoadInt64(&nstreams), atomic.LoadInt64(&nbytes),
		atomic.LoadInt64(&nresets), ping, goaway)
	os.Stdout.Sync()
	os.Exit(0)
}

// ---------------------------------------------------------------- drive

type driveResult struct {
	stream   *yamux.Stream
	sent     int64
	verified int64
	mismatch bool
	err      error
}

func runDrive(sess *yamux.Session, tap *tapConn, n int, size int64, seed uint32, rawSeed int64, finTimeout time.Duration) {
	results := make([]driveResult, n)
	var wg sync.WaitGroup
	// Streams are opened in index order so that stream index i has the
	// i-th id of our parity (1+2i as client, 2+2i as server); each runs in
	// its own goroutine as soon as it is open.
	for i := 0; i < n; i++ {
		st, err := sess.OpenStream()
		if err != nil {
			results[i].err = fmt.Errorf("open: %v", err)
			continue
		}
		wg.Add(1)
		go func(i int, st *yamux.Stream) {
			defer wg.Done()
			results[i] = driveStream(st, tap, i, size, seed,
				rand.New(rand.NewSource(rawSeed*1000003+int64(i))), finTimeout)
		}(i, st)
	}
	wg.Wait()

	var sent, verified, mismatches, errs int64
	for i := range results {
		r := &results[i]
		sent += r.sent
		verified += r.verified
		if r.mismatch {
			mismatches++
		}
		if r.err != nil {
			errs++
			logf("drive: stream %d: %v", i, r.err)
		}
	}
	exitMu.Lock()
	fmt.Fprintf(os.Stdout, "DRIVE streams=%d bytes_sent=%d bytes_verified=%d mismatches=%d errors=%d\n",
		n, sent, verified, mismatches, errs)
	os.Stdout.Sync()
	sess.Close()
	if mismatches == 0 && errs == 0 && sent == int64(n)*size && verified == sent {
		os.Exit(0)
	}
	os.Exit(1)
}

func driveStream(st *yamux.Stream, tap *tapConn, idx int, size int64, seed uint32, rnd *rand.Rand, finTimeout time.Duration) (r driveResult) {
	r.stream = st

	// Writer.
	werrCh := make(chan error, 1)
	var sent int64
	go func() {
		g := newGen(seed, uint32(idx))
		buf := make([]byte, 65536)
		for sent < size {
			k := int64(rnd.Intn(65536) + 1)
			if k > size-sent {
				k = size - sent
			}
			g.fill(buf[:k])
			w, err := st.Write(buf[:k])
			atomic.AddInt64(&sent, int64(w))
			if err != nil {
				werrCh <- fmt.Errorf("write after %d bytes: %v", atomic.LoadInt64(&sent), err)
				return
			}
		}
		werrCh <- nil
	}()

	// Reader: exactly `size` bytes, verified against the generator.
	g := newGen(seed, uint32(idx))
	buf := make([]byte, 32*1024)
	var got int64
	var rerr error
	for got < size {
		want := int64(len(buf))
		if want > size-got {
			want = size - got
		}
		m, err := st.Read(buf[:want])
		for j := 0; j < m; j++ {
			exp := g.next()
			if r.mismatch {
				continue
			}
			if buf[j] != exp {
				r.mismatch = true
				logf("drive: stream %d: mismatch at offset %d: got 0x%02x want 0x%02x",
					idx, got+int64(j), buf[j], exp)
				continue
			}
			r.verified++
		}
		got += int64(m)
		if err != nil {
			if err == io.EOF {
				rerr = fmt.Errorf("EOF after %d of %d bytes", got, size)
			} else {
				rerr = fmt.Errorf("read after %d bytes: %v", got, err)
			}
			break
		}
	}
	if rerr != nil {
		// Unblock the writer if it is stuck on a dead stream.
		st.Close()
	}
	werr := <-werrCh
	r.sent = atomic.LoadInt64(&sent)
	if rerr != nil {
		r.err = rerr
		return
	}
	if werr != nil {
		r.err = werr
		st.Close()
		return
	}

	// Everything read: half-close.  Any further byte from the peer is an
	// error; with this library the next Read returns EOF at once when
	// nothing is buffered; the peer's FIN is checked on the wire tap.
	st.Close()
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	var extra [1]byte
	m, err := st.Read(extra[:])
	if m > 0 {
		r.err = fmt.Errorf("peer sent more than %d bytes", size)
		return
	} else if err != io.EOF {
		if err == yamux.ErrConnectionReset || strings.Contains(fmt.Sprint(err), "reset") {
			r.err = fmt.Errorf("reset by peer: %v", err)
		} else {
			r.err = fmt.Errorf("after close: %v", err)
		}
		return
	}

	// Wait for the peer's FIN (or see its RST).
	deadline := time.Now().Add(finTimeout)
	for {
		fin, rst, ended := tap.peerEnd(st.StreamID())
		switch {
		case fin: // a late RST after the FIN is legal
			return
		case rst:
			r.err = errors.New("reset by peer instead of FIN")
			return
		case ended:
			r.err = errors.New("connection ended before the peer's FIN")
			return
		case time.Now().After(deadline):
			r.err = fmt.Errorf("no FIN from the peer within %v of ours", finTimeout)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
