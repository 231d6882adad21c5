// yamux_relay: the "yamux tunnel" of mxd's benchmark, a relay pair built on
// hashicorp/yamux as packaged by Debian (golang-github-hashicorp-yamux-dev).
// Build with scripts/build-go.sh bench/yamux_relay.go OUTPUT_PATH.
//
//	yamux_relay -mode client -peer HOST:PORT -listen ADDR[,ADDR...]
//	yamux_relay -mode server -listen ADDR -target ADDR[,ADDR...]
//
// The client side dials the server side once and runs one yamux session
// over that TCP connection.  Every connection accepted on its i-th listen
// address becomes a new stream whose first byte is i; the server side reads
// that byte and dials its i-th target.  Bytes are then copied both ways
// (io.Copy style loops, a 32 KiB buffer per direction), with half-close:
// EOF from a socket is sent as the stream's FIN, the peer's FIN becomes
// shutdown(SHUT_WR) of the socket.
//
// The client prints "yamux_relay: up (connected)" on stderr once the
// session is up and it is listening; the server prints "yamux_relay:
// listening" and, per session, "yamux_relay: up (accepted)".  If its session
// ends, the client exits with status 1 (the benchmark counts that as a
// failure); the server just accepts the next one.
//
// Yamux is used with its default configuration (256 KiB stream window,
// keepalive on), as an application would, unless -window is given.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/hashicorp/yamux"
)

const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() interface{} { b := make([]byte, bufSize); return &b }}

func logf(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "yamux_relay: "+format+"\n", a...)
}

func fatalf(format string, a ...interface{}) {
	logf(format, a...)
	os.Exit(1)
}

// The Debian yamux (2019) has Stream.Read return io.EOF as soon as this
// side has closed the stream (sent its FIN) and nothing is buffered, even
// though the peer may still send: it cannot half-close.  We read the
// stream's unexported state to tell that early EOF from the peer's FIN and
// keep reading after it.  Only half-closed streams take this path.
const streamLocalClose = 4 // yamux's streamState constant

var stateOffset = func() uintptr {
	f, ok := reflect.TypeOf(yamux.Stream{}).FieldByName("state")
	if !ok || f.Type.Kind() != reflect.Int {
		return 0
	}
	return f.Offset
}()

func localCloseOnly(s *yamux.Stream) bool {
	if stateOffset == 0 {
		return false
	}
	return *(*int)(unsafe.Pointer(uintptr(unsafe.Pointer(s)) + stateOffset)) == streamLocalClose
}

// toStream copies the socket into the stream, then sends FIN.
func toStream(s *yamux.Stream, c *net.TCPConn) {
	bp := bufPool.Get().(*[]byte)
	buf := *bp
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	bufPool.Put(bp)
	s.Close()
}

// toSocket copies the stream into the socket until the peer's FIN, then
// half-closes the socket; on a reset or error it aborts the socket.
func toSocket(c *net.TCPConn, s *yamux.Stream) {
	bp := bufPool.Get().(*[]byte)
	buf := *bp
	defer bufPool.Put(bp)
	nap := 100 * time.Microsecond
	for {
		n, err := s.Read(buf)
		if n > 0 {
			nap = 100 * time.Microsecond
			if _, werr := c.Write(buf[:n]); werr != nil {
				c.SetLinger(0)
				c.Close()
				return
			}
		}
		if err == io.EOF && localCloseOnly(s) {
			time.Sleep(nap) // see localCloseOnly
			if nap < 10*time.Millisecond {
				nap *= 2
			}
			continue
		}
		if err == io.EOF {
			c.CloseWrite()
			return
		}
		if err != nil {
			c.SetLinger(0)
			c.Close()
			return
		}
	}
}

func relay(c *net.TCPConn, s *yamux.Stream) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		toSocket(c, s)
		wg.Done()
	}()
	toStream(s, c)
	wg.Wait()
	c.Close()
}

func config(window int) *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = os.Stderr
	if window > 0 {
		cfg.MaxStreamWindowSize = uint32(window)
	}
	return cfg
}

func runClient(peer string, listen []string, cfg *yamux.Config) {
	var conn net.Conn
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err = net.Dial("tcp", peer)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		fatalf("dial %s: %v", peer, err)
	}
	sess, err := yamux.Client(conn, cfg)
	if err != nil {
		fatalf("session: %v", err)
	}
	lns := make([]net.Listener, len(listen))
	for i, a := range listen {
		if lns[i], err = net.Listen("tcp", a); err != nil {
			fatalf("listen %s: %v", a, err)
		}
	}
	for i, ln := range lns {
		go func(i int, ln net.Listener) {
			for {
				c, err := ln.Accept()
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						continue
					}
					logf("accept: %v", err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				go func() {
					s, err := sess.OpenStream()
					if err != nil {
						c.Close()
						return
					}
					if _, err := s.Write([]byte{byte(i)}); err != nil {
						s.Close()
						c.Close()
						return
					}
					relay(c.(*net.TCPConn), s)
				}()
			}
		}(i, ln)
	}
	logf("up (connected) to %s", peer)
	<-sess.CloseChan()
	fatalf("session ended")
}

func serve(sess *yamux.Session, targets []string) {
	for {
		s, err := sess.AcceptStream()
		if err != nil {
			logf("session ended: %v", err)
			return
		}
		go func() {
			var idx [1]byte
			if _, err := io.ReadFull(s, idx[:]); err != nil || int(idx[0]) >= len(targets) {
				s.Close()
				return
			}
			c, err := net.Dial("tcp", targets[idx[0]])
			if err != nil {
				s.Close()
				return
			}
			relay(c.(*net.TCPConn), s)
		}()
	}
}

func runServer(listen string, targets []string, cfg *yamux.Config) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fatalf("listen %s: %v", listen, err)
	}
	logf("listening on %s", listen)
	for {
		conn, err := ln.Accept()
		if err != nil {
			logf("accept: %v", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		sess, err := yamux.Server(conn, cfg)
		if err != nil {
			logf("session: %v", err)
			conn.Close()
			continue
		}
		logf("up (accepted) from %s", conn.RemoteAddr())
		go serve(sess, targets)
	}
}

func main() {
	mode := flag.String("mode", "", "client|server")
	listen := flag.String("listen", "", "client: ADDR[,ADDR...] for applications; server: ADDR for the client side")
	peer := flag.String("peer", "", "client: the server side's HOST:PORT")
	target := flag.String("target", "", "server: ADDR[,ADDR...], the i-th for the client's i-th listen address")
	window := flag.Int("window", 0, "yamux MaxStreamWindowSize in bytes (0: the library's default)")
	flag.Parse()
	if flag.NArg() != 0 || *listen == "" {
		flag.Usage()
		os.Exit(2)
	}
	cfg := config(*window)
	switch *mode {
	case "client":
		if *peer == "" {
			flag.Usage()
			os.Exit(2)
		}
		runClient(*peer, strings.Split(*listen, ","), cfg)
	case "server":
		if *target == "" {
			flag.Usage()
			os.Exit(2)
		}
		runServer(*listen, strings.Split(*target, ","), cfg)
	default:
		flag.Usage()
		os.Exit(2)
	}
}
